"""A small fixed state used by the golden files and the isolation checks."""

from __future__ import annotations

from provisioning.model import DidState, DidStatus, ExtensionState, ProvisioningState, TenantState, TenantStatus

ACME = TenantState("ten_acme", "acme", TenantStatus.ACTIVE, "ACME PLUMBING")
BETA = TenantState("ten_beta", "beta", TenantStatus.TRIAL, None)
SUSP = TenantState("ten_susp", "susp", TenantStatus.SUSPENDED, "SUSPENDED CO")
GONE = TenantState("ten_gone", "gone", TenantStatus.CANCELLED, None)

STATE = ProvisioningState(
    tenants=(BETA, ACME, SUSP, GONE),
    extensions=(
        ExtensionState("ext_a101", "ten_acme", "101", "Alice Smith", "0" * 32),
        ExtensionState("ext_a102", "ten_acme", "102", "Front Desk", "1" * 32, True),
        ExtensionState("ext_b101", "ten_beta", "101", "Bob (Sales)", "2" * 32),
        ExtensionState("ext_s200", "ten_susp", "200", "Sam", "3" * 32),
        ExtensionState("ext_g300", "ten_gone", "300", "Gary", "4" * 32),
    ),
    dids=(
        DidState("+15550000001", "ten_acme", "ext_a101"),
        DidState("+15550000002", "ten_acme", None),
        DidState("+15550000003", "ten_beta", "ext_b101"),
        DidState("+15550000004", "ten_susp", "ext_s200"),
        DidState("+15550000005", None, None),
        DidState("+15550000006", None, None, DidStatus.RELEASED),
    ),
)
