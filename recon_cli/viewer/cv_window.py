"""The OpenCV window of ``recon run`` that shows the overlay video (only when a display exists)."""

from __future__ import annotations

import numpy as np


class FrameWindow:
    """An OpenCV window for the 2-D overlay (only when a display exists). ``show`` returns False
    when the user pressed q/Esc or closed the window."""

    def __init__(self, title: str = "recon — overlay"):
        import cv2

        from recon_cli.errors import ReconError
        from recon_cli.viewer.open3d_viewer import display_available

        if not display_available():  # OpenCV's Qt backend aborts the process without a display
            raise ReconError("no display for the overlay window", hint="run with --no-view on headless machines")

        self.cv2, self.title = cv2, title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        self.closed = False

    def show(self, frame_bgr: np.ndarray) -> bool:
        if self.closed:
            return False
        self.cv2.imshow(self.title, frame_bgr)
        key = self.cv2.waitKey(1) & 0xFF
        try:
            visible = self.cv2.getWindowProperty(self.title, self.cv2.WND_PROP_VISIBLE) >= 1
        except self.cv2.error:
            visible = False
        if key in (ord("q"), 27) or not visible:
            self.close()
            return False
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.cv2.destroyWindow(self.title)
            except self.cv2.error:
                pass
