"""What the kernel says: /proc text, sock_diag netlink replies and target memory, parsed into
typed records (waitchain.model) behind one injectable /proc root (reader.ProcFS)."""
