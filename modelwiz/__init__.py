"""modelwiz: pick the right pretrained model for your task and hardware, then fine-tune it live.

One import name, three parts: `modelwiz.engine` (data, hardware, ranking, training, runs; no
screen), `modelwiz.tui` (the Textual wizard and Rich output) and `modelwiz.cli` (the `modelwiz`
command). In the source tree `engine/` and `tui/` sit at the top level; pyproject.toml maps them
into this package.
"""

__version__ = "0.1.0"
