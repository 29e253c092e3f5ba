"""ReplayVM: a record-and-replay x86-64 virtual machine with a time-travel debugger."""

__version__ = "0.1.0"
