"""modelwiz engine: data, hardware, recommendation, training and runs.

Everything here works with no screen. It never imports Textual or Rich, and heavy libraries
(torch, torchvision, transformers) are imported lazily inside the functions that need them, so
that front-ends can import the engine cheaply.
"""
