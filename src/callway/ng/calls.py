"""Calls as the ng protocol names them: a Call-ID, and dialogs keyed by tags.

An ``offer`` carries the Call-ID and the offerer's tag (``from-tag``; in a
re-INVITE also the peer's ``to-tag``); the ``answer`` adds the answerer's
``to-tag``.  A :class:`Dialog` pairs the tag of the first offerer (side
``a``) with the answerer's (side ``b``) and holds one relayed
:class:`Stream` per ``m=`` line (RFC 3264 §6: the answer has as many media
lines as the offer, in the same order).  A later offer from either tag (a
re-INVITE from the caller or from the callee) finds the same dialog, on
the side its tag names.  Forked answers with a new ``to-tag`` take over the
dialog before it is confirmed: the last answer wins, as the final 200 OK is
the last one a proxy sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from callway.ng.media import LEGS, LegName, MediaStream

__all__ = ["Call", "Dialog", "Stream"]


@dataclass(eq=False, slots=True)
class Stream:
    """One relayed ``m=`` line (its 0-based ``index``) and what each side signalled."""

    index: int
    media: MediaStream
    kind: str
    proto: str
    signalled: dict[str, tuple[str, int] | None] = field(default_factory=dict)

    def close(self) -> None:
        """Free the stream's ports."""
        self.media.close()


@dataclass(eq=False, slots=True)
class Dialog:
    """The two tags of one dialog and its streams by ``m=`` index."""

    tag_a: str
    tag_b: str | None
    created: float
    last_signal: float
    streams: dict[int, Stream] = field(default_factory=dict)
    answered: bool = False

    def side_of(self, tag: str) -> LegName | None:
        """``"a"`` or ``"b"`` for a tag of this dialog, else None."""
        if tag == self.tag_a:
            return "a"
        if self.tag_b is not None and tag == self.tag_b:
            return "b"
        return None

    def tag(self, side: LegName) -> str | None:
        """The tag of ``side``."""
        return self.tag_a if side == "a" else self.tag_b

    def last_media(self) -> float | None:
        """When the last RTP packet of any stream, either way, arrived."""
        times = [
            counters.last_packet
            for stream in self.streams.values()
            for counters in (stream.media.counters(leg) for leg in LEGS)
            if counters.last_packet is not None
        ]
        return max(times) if times else None

    def last_activity(self) -> float:
        """The later of the last signalling and the last media packet."""
        media = self.last_media()
        return self.last_signal if media is None else max(self.last_signal, media)

    def close(self) -> None:
        """Free every stream's ports."""
        for stream in self.streams.values():
            stream.close()
        self.streams.clear()


@dataclass(eq=False, slots=True)
class Call:
    """Every dialog of one Call-ID (several when a proxy forks or re-offers per branch)."""

    call_id: str
    created: float
    last_signal: float
    dialogs: list[Dialog] = field(default_factory=list)
    delete_at: float | None = None  # a delayed delete ("delete-delay")

    def __iter__(self) -> Iterator[Dialog]:
        return iter(self.dialogs)

    @property
    def streams(self) -> int:
        """How many relayed streams the call holds."""
        return sum(len(dialog.streams) for dialog in self.dialogs)

    def offer_dialog(self, from_tag: str, to_tag: str | None) -> tuple[Dialog, LegName] | None:
        """The dialog and offering side of an offer by ``from_tag`` (None: a new dialog)."""
        for dialog in self.dialogs:
            if dialog.tag_a == from_tag and (to_tag is None or dialog.tag_b in (None, to_tag)):
                return dialog, "a"
        for dialog in self.dialogs:
            if dialog.tag_b == from_tag and (to_tag is None or to_tag == dialog.tag_a):
                return dialog, "b"
        return None

    def answer_dialog(self, from_tag: str, to_tag: str | None) -> tuple[Dialog, LegName] | None:
        """The dialog and answering side of an answer (``to-tag`` is the answerer's).

        The exact pair first, then a dialog still waiting for its answer,
        then (the answer to a re-INVITE from the callee) the pair reversed,
        then a fork: the caller's dialog, to be re-bound to the new answerer.
        """
        dialogs = self.dialogs
        for dialog in dialogs:
            if dialog.tag_a == from_tag and dialog.tag_b == to_tag:
                return dialog, "b"
        for dialog in dialogs:
            if dialog.tag_a == from_tag and dialog.tag_b is None:
                return dialog, "b"
        for dialog in dialogs:
            if dialog.tag_b == from_tag and dialog.tag_a == to_tag:
                return dialog, "a"
        for dialog in dialogs:
            if dialog.tag_a == from_tag:
                return dialog, "b"
        return None

    def tagged(self, from_tag: str, to_tag: str | None) -> list[Dialog]:
        """The dialogs a ``delete`` by ``from_tag`` (and ``to_tag``) names.

        Those holding both tags, either way round; a dialog not answered yet
        also matches an unknown ``to_tag`` (the callee's failure reply).
        """
        return [
            dialog
            for dialog in self.dialogs
            if dialog.side_of(from_tag) is not None
            and (to_tag is None or dialog.tag_b is None or dialog.side_of(to_tag) is not None)
        ]

    def remove(self, dialog: Dialog) -> None:
        """Close ``dialog`` and forget it."""
        dialog.close()
        self.dialogs = [d for d in self.dialogs if d is not dialog]

    def close(self) -> None:
        """Close every dialog."""
        for dialog in self.dialogs:
            dialog.close()
        self.dialogs.clear()
