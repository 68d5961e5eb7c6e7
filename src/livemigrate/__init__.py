"""livemigrate: an open implementation of MongoDB's push live migration."""

__version__ = "0.1.0"
