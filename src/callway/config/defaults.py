"""Embedded demo configuration: the source document's ``pjsip.conf`` and ``extensions.conf``.

``DEMO_PJSIP_CONF`` is the write-up's file verbatim, with its
"same three sections again for 8006" comment spelled out as real sections, so
extensions 8005 and 8006 (password = extension number) can register and call
each other; ``DEMO_EXTENSIONS_CONF`` is the write-up's dialplan verbatim.
"""

from __future__ import annotations

DEMO_PJSIP_CONF = """\
; pjsip.conf
[transport-udp]
type=transport
protocol=udp
bind=0.0.0.0:5061

[8005]
type=endpoint
context=from-external
disallow=all
allow=ulaw
transport=transport-udp
auth=8005
aors=8005

[8005]
type=auth
auth_type=userpass
password=8005
username=8005

[8005]
type=aor
max_contacts=1

[8006]
type=endpoint
context=from-external
disallow=all
allow=ulaw
transport=transport-udp
auth=8006
aors=8006

[8006]
type=auth
auth_type=userpass
password=8006
username=8006

[8006]
type=aor
max_contacts=1
"""

DEMO_EXTENSIONS_CONF = """\
; extensions.conf
[from-external]
exten => _80XX,1,NoOp()
 same => n,Dial(PJSIP/${EXTEN})
"""
