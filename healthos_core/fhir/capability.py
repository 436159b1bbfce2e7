"""The FHIR R4 CapabilityStatement of HealthOS's FHIR API (``GET /fhir/metadata``)."""

from __future__ import annotations

from typing import Any, Final

from healthos_core.fhir.search import COMMON_PARAMS, SEARCH_PARAMS, SearchParam

#: The FHIR version served (R4; resources are validated with the R4B models, which
#: read R4 JSON).
FHIR_VERSION: Final = "4.0.1"
_SPEC: Final = "http://hl7.org/fhir/SearchParameter"


def _search_param(resource_type: str, name: str, param: SearchParam) -> dict[str, Any]:
    owner = "Resource" if name.startswith("_") else resource_type
    entry: dict[str, Any] = {
        "name": name,
        "definition": f"{_SPEC}/{owner}-{name.removeprefix('_')}",
        "type": param.kind,
    }
    if param.expression:
        entry["documentation"] = f"{param.expression}"
    return entry


def capability_statement(*, base_url: str, software_version: str, date: str) -> dict[str, Any]:
    """Return the CapabilityStatement of the FHIR API.

    Parameters
    ----------
    base_url : str
        The FHIR base (``http://host:port/fhir``), given as ``implementation.url``.
    software_version : str
        HealthOS's version.
    date : str
        When the statement was made (an ISO dateTime).

    Returns
    -------
    dict
        A CapabilityStatement (``kind`` ``instance``) listing, per supported type, the
        interactions (read, search-type, create, update) and the search parameters,
        ``Patient/$everything`` and the Bulk Data ``$export`` operations, and the system
        interactions ``transaction`` and ``batch``.
    """
    resources: list[dict[str, Any]] = []
    for resource_type, params in SEARCH_PARAMS.items():
        search = [
            _search_param(resource_type, name, param)
            for name, param in {**COMMON_PARAMS, **params}.items()
        ]
        resource: dict[str, Any] = {
            "type": resource_type,
            "interaction": [{"code": code} for code in ("read", "search-type", "create", "update")],
            "versioning": "versioned-update",
            "readHistory": False,
            "updateCreate": True,
            "searchParam": search,
        }
        if resource_type == "Patient":
            resource["operation"] = [
                {
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                },
                {
                    "name": "export",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
                },
            ]
        resources.append(resource)
    resources.append(
        {
            "type": "Group",
            "operation": [
                {
                    "name": "export",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
                }
            ],
        }
    )
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "HealthOS",
        "kind": "instance",
        "software": {"name": "HealthOS", "version": software_version},
        "implementation": {"description": "HealthOS FHIR R4 API", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Authorization: Bearer <an API token>; what each role "
                    "reads and writes is in docs/fhir.md"
                },
                "resource": resources,
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "operation": [
                    {
                        "name": "export",
                        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
                    }
                ],
            }
        ],
    }
