"""The small world the consent tests run in: two senders, three lists, built through the ORM."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete

from app.addresses import AddressHasher
from app.models import Base, MailingList, Sender
from app.runtime import Runtime
from app.subscriptions.service import RequestOrigin

# Kept by every reset: written once by the migrations.
KEEP = {"alembic_version", "instance_secrets"}

CONSENT_TEXT = "I agree to receive the Example Shop newsletter (advertising) from Example Shop K.K."
WEB = RequestOrigin(
    ip="203.0.113.7", user_agent="Mozilla/5.0 (test)", source_url="https://shop.example/signup"
)


@dataclass(frozen=True, slots=True)
class World:
    """Sender ``shop`` has a double opt-in list and a single opt-in list; ``other`` has one."""

    shop_id: int
    other_id: int
    doi_list: MailingList
    soi_list: MailingList
    other_list: MailingList
    hasher: AddressHasher

    @property
    def lists(self) -> tuple[MailingList, MailingList, MailingList]:
        return self.doi_list, self.soi_list, self.other_list


def _sender(name: str, domain: str) -> Sender:
    return Sender(
        name=name,
        postal_address="1-2-3 Marunouchi, Chiyoda-ku, Tokyo",
        contact_email=f"support@{domain}",
        from_email=f"news@{domain}",
    )


def _list(sender: Sender, slug: str, *, double_opt_in: bool) -> MailingList:
    return MailingList(
        sender_id=sender.id,
        name=slug,
        slug=slug,
        purpose=f"News and offers ({slug})",
        double_opt_in=double_opt_in,
        language="en",
    )


async def build_world(runtime: Runtime, *, other_double_opt_in: bool = False) -> World:
    async with runtime.sessionmaker() as session, session.begin():
        shop = _sender("Example Shop K.K.", "shop.example")
        other = _sender("Other Co.", "other.example")
        session.add_all([shop, other])
        await session.flush()
        doi = _list(shop, "shop-weekly", double_opt_in=True)
        soi = _list(shop, "shop-flash", double_opt_in=False)
        third = _list(other, "other-news", double_opt_in=other_double_opt_in)
        session.add_all([doi, soi, third])
        await session.flush()
    return World(shop.id, other.id, doi, soi, third, await runtime.hasher())


async def reset_tables(runtime: Runtime) -> None:
    """Empty every table the application writes, children first, in one transaction."""
    async with runtime.sessionmaker() as session, session.begin():
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in KEEP:
                await session.execute(delete(table))
