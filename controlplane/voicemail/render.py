"""A tenant's extensions, voicemail and recording lines of its ``<prefix>-flows`` context (pure).

Every value that reaches a line is checked against its shape here (prefix, tenant id,
numbers, the recordings directory), so no input can end an argument, a line or a context.

- ``_[e][x][t].`` / ``ext-<n>``: the destination "extension" (``Goto(<prefix>-flows,ext-101,1)``,
  also what the internal context's ``101`` jumps to). An extension with a recording policy
  of its own has an exact ``ext-<n>`` (exact names win over patterns) that sets ``CP_REC``.
- ``_[r][i][n][g].``: rings the phone; recording per ``CP_REC``; no answer, busy or unreachable
  -> ``vm-<n>`` when the box exists (``VM_INFO``, read live from the realtime view: enabling
  voicemail needs no re-render).
- ``_[v][m].``: the destination "voicemail": the busy or unavailable greeting, then a message.
- ``vmmain``: the caller's own box (``*97`` in the features context): the PIN is read here and
  compared with the realtime row, each attempt reported to the daemon (``UserEvent``) which
  applies the lockout (controlplane.voicemail.lockout); the box's lock state is read before
  every attempt. Only the caller's endpoint names the box: no digits select another one.
- ``rec``: starts recording one leg (``always``: MixMonitor now, only while bridged;
  ``on_demand``: the ``cprecord`` feature, ``*3`` from either side, starts/stops MixMonitor into
  the same file: features.conf, ``cp-record-toggle`` in extensions.conf) and tells the daemon
  (``UserEvent CpRecording``), which links the file to the call record.
- ``rec-did-<digits>`` / ``rec-q-<id>``: a DID's or a queue's policy, for their owners to
  ``Gosub`` when it exists (``recording_hook``), without knowing the policy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from provisioning.names import NUMBER_PATTERN, PREFIX_PATTERN, voicemail_context

__all__ = ["ExtensionPolicy", "RecordingMode", "RecordingScope", "ScopedPolicy", "TenantSection", "lines",
           "recording_hook"]

PIN_TRIES_PER_CALL = 3
FEATURE_VOICEMAIL = "*97"
FEATURE_RECORD = "*3"  # features.conf applicationmap cprecord
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_PREFIX = re.compile(PREFIX_PATTERN)
_NUMBER = re.compile(NUMBER_PATTERN)
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DIR = re.compile(r"/[A-Za-z0-9._/-]*")


class RecordingMode(StrEnum):
    ALWAYS = "always"
    NEVER = "never"
    ON_DEMAND = "on_demand"


class RecordingScope(StrEnum):
    EXTENSION = "extension"  # ref: number
    DID = "did"  # ref: E.164
    QUEUE = "queue"  # ref: queue id

    def ref_ok(self, ref: str) -> bool:
        return bool({RecordingScope.EXTENSION: _NUMBER, RecordingScope.DID: _E164,
                     RecordingScope.QUEUE: _UUID}[self].fullmatch(ref))


@dataclass(frozen=True, slots=True)
class ScopedPolicy:
    scope: RecordingScope
    ref: str
    mode: RecordingMode


ExtensionPolicy = ScopedPolicy  # scope EXTENSION


@dataclass(frozen=True, slots=True)
class TenantSection:
    tenant_id: str
    prefix: str
    recording_dir: str  # the tenant's recordings as Asterisk sees them (MediaStore)
    policies: tuple[ScopedPolicy, ...] = ()
    ring_seconds: int = 20  # an unanswered extension rings this long before voicemail


class UnsafeValue(ValueError):
    """A value that must never reach the dialplan (a bug upstream: inputs are validated on write)."""


def _check(section: TenantSection) -> None:
    if not _TENANT.fullmatch(section.tenant_id) or not _PREFIX.fullmatch(section.prefix):
        raise UnsafeValue(f"tenant {section.tenant_id!r} / prefix {section.prefix!r}")
    if not _DIR.fullmatch(section.recording_dir):
        raise UnsafeValue(f"recording directory {section.recording_dir!r}")
    if not 5 <= section.ring_seconds <= 300:
        raise UnsafeValue(f"ring seconds {section.ring_seconds!r}")
    for policy in section.policies:
        if not policy.scope.ref_ok(policy.ref):
            raise UnsafeValue(f"{policy.scope.value} ref {policy.ref!r}")


def _policy_exten(policy: ScopedPolicy) -> str:
    if policy.scope is RecordingScope.EXTENSION:
        return f"ext-{policy.ref}"
    if policy.scope is RecordingScope.DID:
        return f"rec-did-{policy.ref[1:]}"
    return f"rec-q-{policy.ref}"


def recording_hook(prefix: str, scope: RecordingScope, ref: str) -> str:
    """The dialplan application a DID's or queue's owner runs where recording starts: a
    ``GosubIf`` into the policy's extension, a no-op when the tenant set none."""
    if not _PREFIX.fullmatch(prefix) or scope is RecordingScope.EXTENSION or not scope.ref_ok(ref):
        raise UnsafeValue(f"recording hook for {scope.value} {ref!r}")
    exten = _policy_exten(ScopedPolicy(scope, ref, RecordingMode.NEVER))
    return f"GosubIf(${{DIALPLAN_EXISTS({prefix}-flows,{exten},1)}}?{prefix}-flows,{exten},1)"


# Asterisk drops "-" from patterns and reads N, X and Z (either case) as digit classes:
# the patterns spell their letters in brackets and check the "-" themselves.
_DIGITS_OK = '"${{FILTER(0123456789,${{{var}}})}}" = "${{{var}}}" & "${{{var}}}" != ""'


def _extensions(s: TenantSection, vm: str) -> list[str]:
    out = ["; extensions (controlplane/voicemail): ring, record per policy, voicemail when unanswered",
           'exten => _[e][x][t].,1,GotoIf($["${EXTEN:3:1}" = "-"]?ring-${EXTEN:4},1)',
           " same => n,Hangup()"]
    for policy in sorted((p for p in s.policies if p.scope is RecordingScope.EXTENSION), key=lambda p: p.ref):
        out += [f"exten => ext-{policy.ref},1,Set(CP_REC={policy.mode.value})",
                f" same => n,Goto(ring-{policy.ref},1)"]
    ok = _DIGITS_OK.format(var="CP_EXT")
    out += [
        "exten => _[r][i][n][g].,1,Set(CP_EXT=${EXTEN:5})",
        f' same => n,GotoIf($["${{EXTEN:4:1}}" = "-" & {ok}]?:bad)',
        ' same => n,GosubIf($["${CP_REC}" = "always" | "${CP_REC}" = "on_demand"]?rec,1(extension,${CP_EXT}))',
        f" same => n,Dial(PJSIP/{s.prefix}_${{CP_EXT}},{s.ring_seconds})",
        f" same => n,GotoIf(${{VM_INFO(${{CP_EXT}}@{vm},exists)}}?vm-${{CP_EXT}},1)",
        " same => n,Hangup()",
        " same => n(bad),Hangup()",
    ]
    return out


def _voicemail(s: TenantSection, vm: str) -> list[str]:
    return [
        "; voicemail: leave a message (the busy greeting after a busy phone)",
        "exten => _[v][m].,1,Set(CP_BOX=${EXTEN:3})",
        f' same => n,GotoIf($["${{EXTEN:2:1}}" = "-" & {_DIGITS_OK.format(var="CP_BOX")}]?:none)',
        f" same => n,GotoIf(${{VM_INFO(${{CP_BOX}}@{vm},exists)}}?:none)",
        " same => n,Answer()",
        f' same => n,VoiceMail(${{CP_BOX}}@{vm},${{IF($["${{DIALSTATUS}}" = "BUSY"]?b:u)}})',
        " same => n,Hangup()",
        " same => n(none),Playback(vm-nobodyavail)",
        " same => n,Hangup()",
        f"; voicemail: the caller's own box ({FEATURE_VOICEMAIL}), PIN checked here, lockout by the daemon",
        "exten => vmmain,1,Answer()",
        " same => n,Set(CP_VMID=${CHANNEL(endpoint)})",
        f' same => n,GotoIf($["${{CP_VMID:0:{len(s.prefix) + 1}}}" = "{s.prefix}_"]?:deny)',
        f" same => n,Set(CP_BOX=${{CP_VMID:{len(s.prefix) + 1}}})",
        " same => n,Set(CP_TRIES=0)",
        " same => n(ask),Set(CP_LOCK=${REALTIME_FIELD(voicemail,uniqueid,${CP_VMID},locked)})",
        ' same => n,GotoIf($["${CP_LOCK}" = "1"]?locked)',
        ' same => n,GotoIf($["${CP_LOCK}" = "0"]?:deny)',
        " same => n,Read(CP_PIN,vm-password,10,,1,10)",
        " same => n,Set(CP_TRIES=$[${CP_TRIES} + 1])",
        ' same => n,GotoIf($["${CP_PIN}" = ""]?retry)',
        ' same => n,GotoIf($["${CP_PIN}" = "${REALTIME_FIELD(voicemail,uniqueid,${CP_VMID},password)}"]?ok)',
        f" same => n,UserEvent(CpVoicemailLogin,Tenant: {s.tenant_id},Mailbox: ${{CP_BOX}},Result: fail)",
        " same => n,Playback(vm-incorrect)",
        f" same => n(retry),GotoIf($[${{CP_TRIES}} < {PIN_TRIES_PER_CALL}]?ask)",
        " same => n,Playback(vm-goodbye)",
        " same => n,Hangup()",
        f" same => n(ok),UserEvent(CpVoicemailLogin,Tenant: {s.tenant_id},Mailbox: ${{CP_BOX}},Result: ok)",
        f" same => n,VoiceMailMain(${{CP_BOX}}@{vm},s)",
        " same => n,Hangup()",
        " same => n(locked),Playback(vm-incorrect)",
        " same => n,Playback(vm-goodbye)",
        " same => n,Hangup()",
        " same => n(deny),Playback(vm-goodbye)",
        " same => n,Hangup()",
    ]


def _recording(s: TenantSection) -> list[str]:
    target = f"{s.recording_dir}/${{CP_RECORDING}}.wav"
    out = [
        "; recording: one file per leg, named by the channel's uniqueid (controlplane/recordings)",
        'exten => rec,1,GotoIf($["${CP_RECORDING}" != ""]?done)',
        " same => n,Set(CP_RECORDING=${REPLACE(UNIQUEID,.,-)})",
        f" same => n,UserEvent(CpRecording,Tenant: {s.tenant_id},Scope: ${{ARG1}},Ref: ${{ARG2}},"
        "Mode: ${CP_REC},Name: ${CP_RECORDING})",
        f' same => n,ExecIf($["${{CP_REC}}" = "always"]?MixMonitor({target},b))',
        f' same => n,ExecIf($["${{CP_REC}}" = "on_demand"]?Set(__CP_RECFILE={target}))',
        ' same => n,ExecIf($["${CP_REC}" = "on_demand"]?Set(__DYNAMIC_FEATURES=cprecord))',
        " same => n(done),Return()",
    ]
    for policy in sorted((p for p in s.policies if p.scope is not RecordingScope.EXTENSION),
                         key=lambda p: (p.scope.value, p.ref)):
        exten = _policy_exten(policy)
        out += [f"exten => {exten},1,Set(CP_REC={policy.mode.value})"]
        if policy.mode is not RecordingMode.NEVER:
            out += [f" same => n,Gosub(rec,1({policy.scope.value},{policy.ref}))"]
        out += [" same => n,Return()"]
    return out


def lines(section: TenantSection) -> Sequence[str]:
    """The tenant's lines of ``<prefix>-flows`` for extensions, voicemail and recording."""
    _check(section)
    vm = voicemail_context(section.prefix)
    return [*_extensions(section, vm), *_voicemail(section, vm), *_recording(section)]
