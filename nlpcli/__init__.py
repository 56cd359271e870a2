"""nlpcli: train and fine-tune transformers for the classic NLP tasks from one command line."""

__version__ = "0.1.0"
