"""comp: a staged Keras/TensorFlow pipeline from a competition folder to a submission."""

__version__ = "0.1.0"
