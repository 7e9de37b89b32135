"""procfs/conntrack.parse_conntrack: NAT-rewritten TCP connections, both ways."""

from __future__ import annotations

from waitchain.procfs.conntrack import parse_conntrack

DNAT = ("ipv4     2 tcp      6 431999 ESTABLISHED src=10.79.0.1 dst=10.79.0.1 sport=40000 dport=8080 "
        "src=10.79.0.2 dst=10.79.0.1 sport=80 dport=40000 [ASSURED] mark=0 zone=0 use=2")
PLAIN = ("ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=22 "
         "src=10.0.0.2 dst=10.0.0.1 sport=22 dport=5000 [ASSURED] mark=0 use=1")
UDP = "ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.9 sport=53 dport=53 src=10.0.0.5 dst=10.0.0.1 sport=53 dport=53"
V6 = ("ipv6     10 tcp      6 300 ESTABLISHED src=fd00:0000:0000:0000:0000:0000:0000:0001 "
      "dst=fd00:0000:0000:0000:0000:0000:0000:0001 sport=41000 dport=8080 "
      "src=fd00:0000:0000:0000:0000:0000:0000:0002 dst=fd00:0000:0000:0000:0000:0000:0000:0001 sport=80 dport=41000")


def test_a_dnat_connection_maps_each_end_to_the_other() -> None:
    peers = parse_conntrack("\n".join([DNAT, PLAIN, UDP, "garbage", ""]))
    client, server = (("10.79.0.1", 40000), ("10.79.0.1", 8080)), (("10.79.0.2", 80), ("10.79.0.1", 40000))
    assert peers == {client: server, server: client}  # the untranslated and the UDP ones are left out


def test_ipv6_addresses_are_written_as_proc_net_tcp6_gives_them() -> None:
    peers = parse_conntrack(V6)
    assert peers[(("fd00::1", 41000), ("fd00::1", 8080))] == (("fd00::2", 80), ("fd00::1", 41000))
