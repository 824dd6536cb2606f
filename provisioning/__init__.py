"""Desired state -> Asterisk objects (PJSIP rows, dialplan, realtime config).

Everything in this package is pure: functions of dataclasses, no I/O, so the
same state always renders the same bytes and is testable without Asterisk.
The appliers that push the output live in ``controlplane/tenants``.
"""
