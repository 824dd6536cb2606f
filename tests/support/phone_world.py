"""What the call e2e worlds (flows, ring groups and queues, voicemail) set up the same way: a
funded partner with its tenants and their extensions, and a phone that registers before it
runs its scenario."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from aiohttp import web
from harness import Beside, calls_config, daemon_beside, free_port
from smtp_support import SmtpServer, smtp_server
from tenants_e2e import register_scenario
from wallet_support import active_funded

from controlplane.asterisk.runner import runner_for
from controlplane.config import Config, HttpConfig, MailConfig, MediaConfig
from controlplane.flows.plugin import applier_key
from controlplane.voicemail.http import services_key as voicemail_key
from controlplane.tenants.http import numbering_services, tenant_services
from controlplane.tenants.models import ExtensionCreate, PartnerCreate, PartnerTier, TenantCreate

FUNDS_MICROS = 100_000_000


def with_instance_media(config: Config) -> Config:
    """The daemon drives an Asterisk it does not run (``daemon_beside``): its media store is where
    that instance keeps its media, seen from here and from Asterisk."""
    etc = runner_for(config).etc_dir
    assert etc is not None
    return msgspec.structs.replace(config, media=MediaConfig(
        dir=str(Path(etc).parent / "spool" / "media"),
        asterisk_dir=f"/srv/controlplane/{config.asterisk.instance}/spool/media"))


@asynccontextmanager
async def mailing_daemon(workdir: Path, name: str, dsn: str, service_token: str
                         ) -> AsyncIterator[tuple[Beside, SmtpServer, Config]]:
    """A daemon beside its Asterisk that mails through a test SMTP server and keeps media where
    that Asterisk sees it (voicemail, recordings): the voicemail worlds' common start."""
    async with smtp_server() as smtp:
        config = calls_config(workdir, instance=f"{name}{os.getpid()}", dsn=dsn,
                              http=HttpConfig(port=free_port(), service_token=service_token),
                              mail=MailConfig(host=smtp.host, port=smtp.port, timeout=5.0))
        config = with_instance_media(config)
        async with daemon_beside(config, dsn) as beside:
            beside.app[applier_key].etc_dir = beside.etc_dir
            beside.app[voicemail_key].spool = beside.etc_dir.parent / "spool"
            yield beside, smtp, config


@dataclass
class Cast:
    partner: str
    tenants: dict[str, str] = field(default_factory=dict)  # SIP prefix -> tenant id
    extensions: dict[str, str] = field(default_factory=dict)  # "<prefix>_<number>" -> extension id
    passwords: dict[str, str] = field(default_factory=dict)  # "<prefix>_<number>" -> SIP password


def plain_extension(number: str) -> ExtensionCreate:
    return ExtensionCreate(number=number, display_name="U")


async def funded_cast(app: web.Application, pool: asyncpg.Pool, name: str,
                      layout: Sequence[tuple[str, Sequence[str]]],
                      extension: Callable[[str], ExtensionCreate] = plain_extension) -> Cast:
    """A BUSINESS partner ``name``, ACTIVE and funded; per (SIP prefix, numbers) of ``layout`` a
    tenant with those extensions (``extension`` makes each one's body from its number)."""
    tenants_svc, numbering = app[tenant_services], app[numbering_services]
    cast = Cast((await tenants_svc.create_partner(PartnerCreate(name=name, tier=PartnerTier.BUSINESS))).id)
    await active_funded(pool, cast.partner, FUNDS_MICROS)
    for prefix, numbers in layout:
        cast.tenants[prefix] = (await tenants_svc.create_tenant(cast.partner, TenantCreate(
            name=prefix, billing_email="a@b.co", sip_prefix=prefix))).id
        for number in numbers:
            ext = await numbering.create_extension(cast.partner, cast.tenants[prefix], extension(number))
            cast.extensions[ext.sip_username] = ext.id
            cast.passwords[ext.sip_username] = ext.secrets.sip_password
    return cast


async def registered_phone(run: Callable[..., Any], user: str, scenario: str,
                           **options: Any) -> subprocess.Popen[bytes]:
    """``user`` registers (SIPp, a port of its own, waited for), then runs ``scenario`` from that
    port in the background; ``run`` is the world's SIPp runner, ``options`` go to it."""
    port = free_port(socket.SOCK_DGRAM)
    done = await asyncio.to_thread(run, register_scenario(), user, user=user, port=port, background=False)
    assert done.returncode == 0, f"{user} did not register"
    phone: subprocess.Popen[bytes] = run(scenario, user, port=port, **options)
    await asyncio.sleep(0.3)
    return phone
