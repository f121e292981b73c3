# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel modules podnet's first ipip device makes the kernel load, and whether a teardown
may unload them again (podnet.fabric.ip_tunnel's O(kernel_module_file)).

Creating the first ipip device loads ``ipip`` (and what it needs, ``tunnel4`` and ``ip_tunnel``,
where those are modules), and loading ``ipip`` creates its fallback device ``tunl0`` in every
network namespace of the machine, present and future. ``tunl0`` cannot be deleted; only
unloading ``ipip`` removes it, from every namespace at once, and that would also delete every
other ipip device on the machine. So the rule (``unload``):

* only modules that podnet's own device creation loaded (recorded on the node when it did);
* only when the node is the machine's initial network namespace (a real host): a lab node or a
  container is one namespace among others that share the kernel's modules;
* only when nothing else uses them: no module holds them (``refcnt`` 0), no other ipip device in
  any namespace podnet can see (this one and those under /run/netns), and ``tunl0`` itself is
  unconfigured (down, no address: Calico, for one, uses ``tunl0``).

Otherwise ``tunl0`` stays, and the reason is given as a warning.
"""

from __future__ import annotations

# By device kind: the modules its creation may load, in the order they can be unloaded.
MODULES = {"ipip": ("ipip", "tunnel4", "ip_tunnel")}
FALLBACK = {"ipip": "tunl0"}


def loaded_by_creation(kind, before, after):
    """The modules of ``kind`` that were not loaded ``before`` a device creation and are ``after``
    (each a set of loaded loadable module names)."""
    return [m for m in MODULES.get(kind, ()) if m not in before and m in after]


def unload(kind, recorded, init_netns, refcnt, others, fallback_used):
    """``(modules to unload, in order; why the fallback device stays, or None)``.

    ``recorded``: what podnet's creation loaded on this node; ``init_netns``: the node is the
    machine's initial network namespace; ``refcnt``: {module: users, None when not a loaded
    module}; ``others``: other devices of ``kind`` ("namespace/name"); ``fallback_used``: the
    fallback device is up or has an address.
    """
    fallback = FALLBACK.get(kind)
    loaded = [m for m in MODULES.get(kind, ()) if refcnt.get(m) is not None]
    if not fallback or MODULES[kind][0] not in loaded:
        return [], None
    stays = "%s stays: it is the %s kernel module's fallback device, in every network namespace while the " \
            "module is loaded, and cannot be deleted; " % (fallback, MODULES[kind][0])
    if MODULES[kind][0] not in recorded:
        return [], stays + "podnet did not load the module on this node (it was loaded before)"
    if not init_netns:
        return [], stays + ("this node is a network namespace (a lab node or a container), and the module "
                            "belongs to the whole machine, where other namespaces may use it")
    if others:
        return [], stays + "other %s devices use the module: %s" % (kind, ", ".join(sorted(others)))
    if fallback_used:
        return [], stays + "%s is configured (up or with an address): someone uses it" % fallback
    if refcnt.get(MODULES[kind][0]):
        return [], stays + "the module is in use (refcnt %d)" % refcnt[MODULES[kind][0]]
    # What podnet loaded and nothing holds, in order (unloading one frees the next).
    return [m for m in MODULES[kind] if m in recorded and m in loaded], None
