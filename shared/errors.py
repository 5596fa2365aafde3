"""Errors of the wire contract.

ValueError
 └── ContractError            a payload does not satisfy the contract; ``field`` names where
      ├── PayloadTooLargeError  the payload exceeds shared.limits.MAX_PAYLOAD_BYTES
      └── TopicError            a topic or device id is not a CityOps one
"""


class ContractError(ValueError):
    """A message broke the contract. ``field`` is a dotted path ("objects.0.score") or "payload"."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class PayloadTooLargeError(ContractError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__("payload", f"{size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class TopicError(ContractError):
    def __init__(self, reason: str, field: str = "topic") -> None:
        super().__init__(field, reason)
