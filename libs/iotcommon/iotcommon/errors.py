"""The one error hierarchy of iotpipe. Every component raises subclasses of IoTError."""

from __future__ import annotations


class IoTError(Exception):
    """Root of every error iotpipe raises on purpose."""


class ConfigError(IoTError):
    """A setting (env var, flag, CR field) is missing or invalid. Entry points exit with code 2."""


class MessageError(IoTError):
    """A message cannot be accepted. `reason` is a stable code used in dead-letter records."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ServiceUnavailable(IoTError):
    """A dependency (Kafka, HBase/Thrift, the API server) cannot be reached right now; retrying may help."""


class StackError(IoTError):
    """The local stack could not be installed, started or stopped."""
