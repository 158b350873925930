"""Serializer building blocks shared by every app."""

from __future__ import annotations

from typing import Any, ClassVar


class GoShapeMixin:
    """Renders absent values the way the original's Go DTOs do, instead of `null`:

    - `omit_if_none`: fields declared `*T` with `omitempty` (a missing nested object, an unset
      timestamp, an optional address) are left out of the object;
    - `empty_if_none`: fields declared plain `string` are `""`.

    Clients generated from the contract (the TypeScript SDK, the Terraform provider) type these
    as optional strings or objects, never as nullable ones.
    """

    omit_if_none: ClassVar[tuple[str, ...]] = ()
    empty_if_none: ClassVar[tuple[str, ...]] = ()

    def to_representation(self, instance: Any) -> Any:
        data = super().to_representation(instance)  # type: ignore[misc]
        for name in self.omit_if_none:
            if name in data and data[name] is None:
                del data[name]
        for name in self.empty_if_none:
            if name in data and data[name] is None:
                data[name] = ""
        return data
