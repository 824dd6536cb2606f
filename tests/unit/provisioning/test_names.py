"""provisioning.names builds every tenant object name and is the only place that parses one back."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from provisioning import names, validate
from provisioning.names import (TenantEndpoint, channel_endpoint, channel_extension, endpoint_name,
                                parse_endpoint)

prefixes = st.from_regex(r"\A[a-z0-9]{3,12}\Z")
numbers = st.from_regex(r"\A[0-9]{2,6}\Z")


@given(prefixes, numbers, st.from_regex(r"\A[0-9a-f]{8}\Z"))
def test_what_is_built_parses_back(prefix: str, number: str, sequence: str) -> None:
    name = endpoint_name(prefix, number)
    parsed = parse_endpoint(name)
    assert parsed == TenantEndpoint(prefix, number) and parsed.name == name
    assert channel_endpoint(f"PJSIP/{name}-{sequence}") == TenantEndpoint(prefix, number)
    assert channel_extension(f"PJSIP/{name}-{sequence}") == number


@given(prefixes, numbers)
def test_the_shapes_are_the_ones_input_is_validated_against(prefix: str, number: str) -> None:
    assert validate.sip_prefix(prefix) == prefix
    assert re.fullmatch(names.PREFIX_PATTERN, prefix) and re.fullmatch(names.NUMBER_PATTERN, number)


def test_names_that_are_not_a_tenant_phone_do_not_parse() -> None:
    for name in ("carrier", "cp-emergency", "cp-emergency-relay", "from-carrier", "acme-internal", "acme_1",
                 "acme_1234567", "ac_101", "Acme_101", "acme_101;x", "acme_101\n", "acme_10a", "sipp"):
        assert parse_endpoint(name) is None, name
    for channel in ("PJSIP/carrier-0000002a", "PJSIP/cp-emergency-relay-00000001", "SIP/acme_101-01",
                    "Local/101@acme-internal-00000001;1", "PJSIP/acme_101", "", "PJSIP/acme_x-01"):
        assert channel_endpoint(channel) is None and channel_extension(channel) is None, channel


def test_contexts_of_a_tenant() -> None:
    built = {names.internal_context("acme"), names.outbound_context("acme"), names.dial_context("acme"),
             names.inbound_context("acme"), names.features_context("acme"), names.emergency_context("acme")}
    assert built == {"acme-internal", "acme-outbound", "acme-dial", "acme-inbound", "acme-features",
                     "acme-emergency"}
    assert not any(parse_endpoint(name) for name in built)
