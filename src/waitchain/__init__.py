"""waitchain: why is this process stuck?"""

__version__ = "0.1.0"
