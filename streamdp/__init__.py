"""streamdp: a streaming video privacy pipeline that replaces faces with privatized faces."""

__version__ = "0.1.0"
