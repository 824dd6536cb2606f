"""The merged OpenAPI document is a valid 3.1 document, and every request body and success
response carries an example that its own schema accepts (docs/api.md)."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from openapi_spec_validator import validate

from openapi_support import examples, media, merged_document


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return merged_document()


def test_the_document_validates_with_openapi_spec_validator(document: dict[str, Any]) -> None:
    validate(document)  # raises OpenAPIValidationError naming the first fault


def test_every_request_body_and_success_response_has_an_example(document: dict[str, Any]) -> None:
    missing = [where for where, _, body in media(document) if not examples(document, body)]
    assert missing == [], "\n".join(missing)


def test_every_json_example_is_accepted_by_its_schema(document: dict[str, Any]) -> None:
    for where, _, body in media(document):
        if "schema" not in body or not isinstance(body["schema"], dict):
            continue
        validator = Draft202012Validator({**body["schema"], "components": document["components"]})
        for example in examples(document, body):
            if isinstance(example, str) and "json" not in where:
                continue  # a CSV or binary sample
            faults = [e.message for e in validator.iter_errors(example)]
            assert faults == [], f"{where}: {faults}"
