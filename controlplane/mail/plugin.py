"""Wires mail into the daemon: the outbox worker and the event notifier (no routes)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from controlplane.mail.notifier import Notifier
from controlplane.mail.worker import MailWorker
from controlplane.plugins import Context, NoAsteriskFiles

worker_key = web.AppKey("mail_worker", MailWorker)
notifier_key = web.AppKey("mail_notifier", Notifier)


@dataclass(frozen=True)
class MailPlugin(NoAsteriskFiles):
    name: str = "mail"
    package: str = "controlplane.mail"

    def install(self, app: web.Application, context: Context) -> None:
        if context.pool is None:  # the OpenAPI contract test only wires routes
            return
        worker = MailWorker(pool=context.pool, config=context.config.mail)
        notifier = Notifier(pool=context.pool)
        app[worker_key] = worker
        app[notifier_key] = notifier
        # The notifier queues even while mail is disabled: nothing is lost, it is sent later.
        context.background.append(context.once("mail.notifier", notifier.run))
        context.background.append(context.once("mail.outbox", worker.run))


PLUGIN = MailPlugin()
