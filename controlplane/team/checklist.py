"""The setup checklist of seed 003 ("Your Setup Checklist"), pure: six steps from facts.

Each step "auto-detects completion based on real activity": the store reads the facts
from the partner's data, this module only names and counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.team.models import Checklist, ChecklistStep


@dataclass(frozen=True, slots=True)
class Facts:
    has_tenant: bool  # 1. Create Your First Customer
    branding_set: bool  # 2. Set Up Your Branding: a logo, a primary color or a brand name
    billing_configured: bool  # 3. Configure Billing: a default payment method on file
    has_number: bool  # 4. Get Your First Phone Number: a DID in the inventory, not released
    has_billing_profile: bool  # 5. Set Your Pricing: a profile made or edited, or a tenant's own rates
    invited_member: bool  # 6. Invite Team Members: anyone ever invited


STEPS = (
    ("create_customer", "Create Your First Customer", "has_tenant"),
    ("set_up_branding", "Set Up Your Branding", "branding_set"),
    ("configure_billing", "Configure Billing", "billing_configured"),
    ("first_phone_number", "Get Your First Phone Number", "has_number"),
    ("set_pricing", "Set Your Pricing", "has_billing_profile"),
    ("invite_team", "Invite Team Members", "invited_member"),
)


def checklist(facts: Facts) -> Checklist:
    steps = [ChecklistStep(id=step_id, title=title, done=bool(getattr(facts, fact))) for step_id, title, fact in STEPS]
    done = sum(s.done for s in steps)
    return Checklist(steps=steps, done_count=done, total=len(steps), complete=done == len(steps))
