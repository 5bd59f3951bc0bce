"""cnncli: the convolutional-network workflow as reproducible commands."""

__version__ = "0.1.0"
