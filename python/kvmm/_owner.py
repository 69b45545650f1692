# SPDX-License-Identifier: MIT
"""Deterministic freeing of a C object that others may still depend on.

An owner is freed when it is closed (close(), the end of a ``with`` block,
or garbage collection) and nothing pins it any more: a cache pins its
backend, and every DLPack export pins the cache whose memory it shows, so a
tensor never outlives the pages it points at.
"""
import threading


class Closing:
    """close() at the end of a ``with`` block and on garbage collection."""

    def close(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may be half gone
            pass


class Owner(Closing):
    _kind = "object"  # for messages: "backend is closed"
    _destroy = None  # name of the libkvmm function that frees the handle
    _parent = None  # the Owner this one pinned at creation, if any

    def _owner_init(self):
        self._h = None
        self._olock = threading.Lock()
        self._pins = 0
        self._closing = False
        self._freed = False

    @property
    def handle(self):
        """The C object's pointer (an int), for other C code."""
        h = self._h
        if not h or self._closing:
            raise ValueError(f"{self._kind} is closed")
        return h

    def _free(self):
        h, self._h = self._h, None
        if h:
            from ._capi import lib
            getattr(lib, self._destroy)(h)
            if self._parent is not None:
                self._parent._unpin()

    @property
    def closed(self):
        """True once close() was called (the C object may live on while pinned)."""
        return self._closing

    def _pin(self, what="object"):
        with self._olock:
            if self._closing:
                raise ValueError(f"{what} is closed")
            self._pins += 1

    def _unpin(self):
        with self._olock:
            self._pins -= 1
            now = self._closing and not self._pins and not self._freed
            if now:
                self._freed = True
        if now:
            self._free()

    # DLPack's names for pin/unpin (kvmm.dlpack calls these)
    def _export_taken(self):
        self._pin()

    def _export_released(self):
        self._unpin()

    def close(self):
        """Free the C object now, or as soon as the last dependant lets go."""
        if getattr(self, "_olock", None) is None:  # __init__ failed early
            return
        with self._olock:
            if self._closing:
                return
            self._closing = True
            now = not self._pins and not self._freed
            if now:
                self._freed = True
        if now:
            self._free()
