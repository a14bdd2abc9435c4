"""Small widgets the wizard's screens are built from."""

from modelwiz.tui.widgets.class_balance import ClassBalance
from modelwiz.tui.widgets.line_chart import LineChart, Series
from modelwiz.tui.widgets.loss_chart import downsample
from modelwiz.tui.widgets.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmall

__all__ = ["ClassBalance", "LineChart", "Series", "MIN_HEIGHT", "MIN_WIDTH", "TooSmall", "downsample"]
