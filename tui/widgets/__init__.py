"""Small widgets the wizard's screens are built from."""

from tui.widgets.class_balance import ClassBalance
from tui.widgets.loss_chart import LossSparkline, downsample
from tui.widgets.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmall

__all__ = ["ClassBalance", "LossSparkline", "MIN_HEIGHT", "MIN_WIDTH", "TooSmall", "downsample"]
