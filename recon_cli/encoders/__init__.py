"""Encoders: image crop → morphable-model coefficients (torch).

Contract (shared by training, export and the runtime backends):

* input ``x: (B, 3, S, S) float32``, RGB, values in [0, 1], S = 224 by default; the encoder
  normalises internally, so an exported ONNX graph takes the same plain input;
* output ``(B, layout.total) float32`` coefficients in the :class:`recon_cli.coeffs.CoeffLayout`
  order; an untrained encoder outputs the mean face, frontal and centred (zero coefficients).
"""
