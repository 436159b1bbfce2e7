"""The one exception hierarchy of HealthOS.

Domain code raises these; each boundary (the API in ``serving.main``, the CLI in
``serving.cli``) translates them once into HTTP problem details or exit codes.
"""

from __future__ import annotations

from typing import Any


class HealthOSError(Exception):
    """Base class of every HealthOS error.

    Parameters
    ----------
    message : str
        What went wrong and, where possible, what to do about it.
    code : str, optional
        A stable machine-readable code; defaults to the class's ``code``.
    """

    code: str = "healthos-error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def problem_extensions(self) -> dict[str, Any]:
        """Return extra JSON members a boundary may add to the error's report.

        The API adds them to the RFC 9457 problem details (extension members), e.g. the
        blocking issues of a claim the scrubber stopped. Default: none.
        """
        return {}


class NotFoundError(HealthOSError, LookupError):
    """A referenced record does not exist."""

    code = "not-found"


class InvalidInputError(HealthOSError, ValueError):
    """Input is malformed or violates a rule; nothing was written."""

    code = "invalid-input"


class InvalidParameterError(InvalidInputError):
    """One named argument of a calculation has an impossible value or the wrong type.

    The base of the reasoning layer's argument errors (a clinical score's parameter, a
    queue model's rate): the message names the argument, the rejected value and what is
    allowed.

    Parameters
    ----------
    parameter : str
        The argument's name, e.g. ``"resp_rate"``.
    value : object
        The rejected value.
    reason : str
        What is allowed, e.g. ``"must be a finite number > 0"``.

    Attributes
    ----------
    parameter : str
        The argument's name.
    value : object
        The rejected value.
    """

    code = "invalid-parameter"

    def __init__(self, parameter: str, value: object, reason: str) -> None:
        self.parameter = parameter
        self.value = value
        super().__init__(f"invalid {parameter}={value!r}: {reason}")


class ConflictError(HealthOSError):
    """The operation conflicts with the current state of the record."""

    code = "conflict"


class PermissionDeniedError(HealthOSError, PermissionError):
    """The caller's role or facility scope does not allow the operation."""

    code = "forbidden"


class FhirValidationError(InvalidInputError):
    """A FHIR resource or bundle failed validation or reference resolution.

    Parameters
    ----------
    message : str
        The reason, naming the resource (``"Observation/123"`` or entry index).
    source : str, optional
        The file the resource came from.
    """

    code = "fhir-invalid"

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(f"{source}: {message}" if source else message)
        self.source = source
        self.reason = message


class BillingError(HealthOSError):
    """Base class of billing errors."""

    code = "billing-error"


class PricingError(BillingError, LookupError):
    """No chargemaster price exists for a service code on the service date."""

    code = "no-price"
