"""The registrar: REGISTER processing with digest authentication (RFC 3261 §10.3).

Answers the way Asterisk's chan_pjsip users expect:

* no or stale credentials: 401 with a fresh challenge (``stale=true`` when the
  nonce only expired, RFC 7616 §3.3);
* wrong password or unknown user: 401 again (the same answer for both, so
  nobody can enumerate extensions) and 403 once the source or the user has
  failed too often (a :class:`~callway.sip.digest.FailureTracker` ban);
* authenticated, but the AOR of the To URI does not exist: 404; exists but
  is not one of the endpoint's ``aors``: 403;
* ``max_contacts`` exceeded without ``remove_existing``: 403;
* an expiration below ``minimum_expiration``: 423 with Min-Expires.

Sans-I/O: :meth:`Registrar.handle_register` takes the request, its source
and ``now`` and returns the response to send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, NamedTuple

from callway.core.address import Address
from callway.core.logbudget import LogBudget
from callway.pbx.auth import Authenticator, AuthOutcome
from callway.pbx.location import Binding, Location
from callway.pbx.model import Aor, PjsipConfig
from callway.pbx.nat import rewrite_contact_uri
from callway.sip.errors import ParseError
from callway.sip.headers import NameAddr, format_params
from callway.sip.message import Request, Response, make_response
from callway.sip.uri import SipURI

log = logging.getLogger("callway.pbx.registrar")


class ContactRequest(NamedTuple):
    """One Contact of a REGISTER: URI, granted expiration, parameters."""

    uri: str
    expires: int
    params: dict[str, str | None]


class Registrar:
    """REGISTER handling for the AORs of a pjsip.conf."""

    def __init__(self, config: PjsipConfig, location: Location, auth: Authenticator) -> None:
        self.config = config
        self.location = location
        self.auth = auth
        #: Called with each binding a REGISTER adds or refreshes (callback, push params).
        self.listeners: list[Callable[[Binding], None]] = []
        #: "Added contact" lines: one per new contact, at most 20 a second; the
        #: shell reports the rest with :meth:`log_suppressed` (registration storms).
        self.added_log = LogBudget(20)

    def log_suppressed(self) -> None:
        """Log how many "Added contact" lines the budget held back since the last call."""
        count = self.added_log.take_suppressed()
        if count:
            log.info("Added %d more contacts (not logged one by one: at most %d lines a second)",
                     count, self.added_log.per_second)  # fmt: skip

    def handle_register(self, request: Request, source: Address, now: float) -> Response:
        """Process one REGISTER (RFC 3261 §10.3 steps 1-8)."""
        outcome = self.auth.check(request, source, now)
        if outcome.response is not None:
            return outcome.response
        try:
            return self._register(request, source, now, outcome)
        except ParseError as exc:
            return make_response(request, exc.status_hint or 400, to_tag=self.auth.tag())

    def _register(
        self, request: Request, source: Address, now: float, outcome: AuthOutcome
    ) -> Response:
        to_uri = request.to.uri
        aor_name = to_uri.user if isinstance(to_uri, SipURI) else None
        aor = self.config.aors.get(aor_name or "")
        if aor is None or aor_name is None:
            return self._reply(request, 404, "Not Found")
        endpoint = outcome.endpoint
        if endpoint is None or aor_name not in endpoint.aors:
            return self._reply(request, 403, "Forbidden")
        if request.contact_star:
            return self._unregister_all(request, aor, now)
        wanted = self._contact_requests(request, aor)
        if isinstance(wanted, Response):
            return wanted
        if endpoint.rewrite_contact:  # Asterisk's rewrite_contact: the NAT mapping, not the LAN
            wanted = [w._replace(uri=rewrite_contact_uri(w.uri, source)) for w in wanted]
        return self._apply(request, source, now, aor, wanted)

    def _reply(self, request: Request, status: int, reason: str | None = None) -> Response:
        return make_response(request, status, reason, to_tag=self.auth.tag())

    def _unregister_all(self, request: Request, aor: Aor, now: float) -> Response:
        # RFC 3261 §10.3 step 6: "*" only with Expires: 0 and no other contact.
        if request.expires != 0 or request.count("contact") != 1:
            return self._reply(request, 400, "Invalid Contact *")
        call_id, cseq = request.call_id, request.cseq.seq
        for binding in self.location.lookup(aor.name, now):
            if binding.call_id == call_id and cseq <= binding.cseq:
                return self._reply(request, 500, "Out Of Order CSeq")
        self.location.remove_all(aor.name)
        return self._ok(request, aor, now)

    def _contact_requests(self, request: Request, aor: Aor) -> list[ContactRequest] | Response:
        header_expires = request.expires
        result = []
        for contact in request.contacts:
            expires = _contact_expires(contact, header_expires, aor.default_expiration)
            if 0 < expires < aor.minimum_expiration:
                response = self._reply(request, 423, "Interval Too Brief")
                response.add("Min-Expires", str(aor.minimum_expiration))
                return response
            if aor.maximum_expiration and expires > aor.maximum_expiration:
                expires = aor.maximum_expiration
            params = contact.params
            if params:
                params = {k: v for k, v in params.items() if k not in ("expires", "q")}
            result.append(ContactRequest(str(contact.uri), expires, params))
        return result

    def _apply(
        self,
        request: Request,
        source: Address,
        now: float,
        aor: Aor,
        wanted: list[ContactRequest],
    ) -> Response:
        # RFC 3327: callway honours Path whatever the AOR's support_path says (chan_pjsip
        # needs support_path=yes): behind callway balancer it is how a node reaches a phone.
        path = tuple(request.get_all("path")) if "path" in request else ()
        user_agent = request.get("user-agent") or ""
        refusal = self.bind(
            aor, wanted, request.call_id, request.cseq.seq, source, now, path, user_agent
        )
        if refusal is not None:
            return self._reply(request, *refusal)
        return self._ok(request, aor, now, path)

    def bind(
        self,
        aor: Aor,
        wanted: list[ContactRequest],
        call_id: str,
        cseq: int,
        source: Address,
        now: float,
        path: tuple[str, ...] = (),
        user_agent: str = "",
    ) -> tuple[int, str] | None:
        """Apply a REGISTER's contacts to ``aor`` (RFC 3261 §10.3 steps 7-8).

        Return the (status, reason) of a refusal, in which case nothing was
        changed; None once the bindings are in the location service.
        """
        if len(wanted) == 1 and wanted[0].expires > 0:
            lean = self._bind_alone(aor, wanted[0], call_id, cseq, source, now, path, user_agent)
            if lean is not False:
                return lean
        location = self.location
        previous: dict[str, Binding | None] = {}
        for item in wanted:
            old = previous[item.uri] = location.get(aor.name, item.uri)
            if old is not None and old.call_id == call_id and cseq <= old.cseq:
                return 500, "Out Of Order CSeq"
        existing = location.lookup(aor.name, now)
        if len(wanted) == 1 and wanted[0].expires > 0:  # the usual REGISTER: one contact
            adding = wanted
            removing: set[str] = set()
            kept = [b for b in existing if b.uri != wanted[0].uri]
        else:
            adding = [w for w in wanted if w.expires > 0]
            removing = {w.uri for w in wanted if w.expires == 0}
            if removing:
                existing = [b for b in existing if b.uri not in removing]
            new_uris = {w.uri for w in adding}
            kept = [b for b in existing if b.uri not in new_uris]
        if aor.max_contacts <= 0 and adding:
            return 403, "Forbidden"
        overflow = len(kept) + len(adding) - aor.max_contacts
        if overflow > 0:
            if not aor.remove_existing or len(adding) > aor.max_contacts:
                return 403, "Too Many Contacts"
            for binding in kept[:overflow]:
                location.remove(aor.name, binding.uri)
        for uri in removing:
            if location.get(aor.name, uri) is not None:
                log.info("Removed contact '%s' from AOR '%s' due to request", uri, aor.name)
            location.remove(aor.name, uri)
        # One new contact and nothing removed (the usual REGISTER): what the
        # location held for it was read above and has not changed since.
        known = previous if len(adding) == 1 and not removing else None
        for item in adding:
            old = known[item.uri] if known is not None else location.get(aor.name, item.uri)
            self._store(aor, item, old, call_id, cseq, source, now, path, user_agent)
        return None

    def _store(
        self,
        aor: Aor,
        item: ContactRequest,
        old: Binding | None,
        call_id: str,
        cseq: int,
        source: Address,
        now: float,
        path: tuple[str, ...],
        user_agent: str,
    ) -> None:
        """Put one contact's binding in the location service and tell the listeners."""
        if old is None and self.added_log.allow(now):
            # Asterisk logs new contacts at verbose 3 and refreshes only at debug.
            log.info("Added contact '%s' to AOR '%s' with expiration of %d seconds",
                     item.uri, aor.name, item.expires)  # fmt: skip
        params = item.params
        binding = Binding(
            aor.name,
            item.uri,
            now + item.expires,
            call_id,
            cseq,
            source,
            now if old is None else old.registered_at,  # a refresh keeps its age
            path,
            user_agent,
            (params.get("+sip.instance") or "").strip('"') if params else "",
            (params.get("reg-id") or "") if params else "",
            format_params(params) if params else "",
        )
        self.location.put(binding)
        for listener in self.listeners:
            listener(binding)

    def _bind_alone(
        self,
        aor: Aor,
        item: ContactRequest,
        call_id: str,
        cseq: int,
        source: Address,
        now: float,
        path: tuple[str, ...],
        user_agent: str,
    ) -> tuple[int, str] | Literal[False] | None:
        """:meth:`bind` for one contact when the AOR holds at most one binding (else False).

        The usual REGISTER: a refresh of the AOR's contact, or a phone that
        came back from another address or port replacing it (``max_contacts=1``
        with ``remove_existing``).  Same outcome as the general case, without
        its lists and sets.
        """
        uri = item.uri
        location = self.location
        held = location.bindings_of(aor.name)
        old = other = None
        if held:
            if len(held) > 1:
                return False  # several contacts: the general case counts and removes
            [other] = held.values()
            if other.uri == uri:
                old, other = other, None
            elif other.expires_at <= now:
                other = None  # expired, not yet swept: not counted (as lookup)
        if old is not None and old.call_id == call_id and cseq <= old.cseq:
            return 500, "Out Of Order CSeq"
        if aor.max_contacts <= 0:
            return 403, "Forbidden"
        if other is not None and aor.max_contacts < 2:
            if not aor.remove_existing:
                return 403, "Too Many Contacts"
            location.remove(aor.name, other.uri)
        self._store(aor, item, old, call_id, cseq, source, now, path, user_agent)
        return None

    def contact_values(self, aor: Aor, now: float) -> list[str]:
        """The Contact values of a 200 to REGISTER: every live binding (§10.3 step 8)."""
        return [
            f"<{binding.uri}>{binding.params};expires={binding.remaining(now)}"
            for binding in self.location.lookup(aor.name, now)
        ]

    def _ok(self, request: Request, aor: Aor, now: float, path: tuple[str, ...] = ()) -> Response:
        response = self._reply(request, 200, "OK")
        for value in self.contact_values(aor, now):
            response.add("Contact", value)
        for value in path:
            response.add("Path", value)
        if path:
            response.add("Supported", "path")
        return response


def _contact_expires(contact: NameAddr, header_expires: int | None, default: int) -> int:
    """RFC 3261 §10.3 step 6: the contact's expires param, else Expires, else default."""
    value = contact.params.get("expires")
    if value is not None:
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 10:
            raise ParseError(f"bad Contact expires {value!r}")
        return int(text)
    if header_expires is not None:
        return header_expires
    return default
