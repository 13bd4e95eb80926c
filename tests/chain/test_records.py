"""`chain.records.fast_init`: the faster constructor makes the same values as the dataclass's."""

from __future__ import annotations

import dataclasses

import pytest

from chain.records import fast_init


@dataclasses.dataclass(frozen=True, slots=True)
class Slotted:
    a: int
    b: bytes = b"x"
    c: int | None = dataclasses.field(default=None, init=False, compare=False)


@dataclasses.dataclass(frozen=True)
class Plain:
    a: int
    b: bytes = b"x"
    c: int | None = dataclasses.field(default=None, init=False, compare=False)


@pytest.mark.parametrize("cls", [Slotted, Plain])
def test_the_fast_constructor_makes_the_dataclass_value(cls: type[Slotted] | type[Plain]) -> None:
    reference = cls(1, b"y"), cls(2), cls(a=3, b=b"z")
    fast_init(cls)
    assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
    assert cls.__init__.__code__.co_filename == f"<__init__ of {cls.__qualname__}>"  # replaced
    made = cls(1, b"y"), cls(2), cls(a=3, b=b"z")
    assert made == reference
    assert [repr(v) for v in made] == [repr(v) for v in reference]
    assert [hash(v) for v in made] == [hash(v) for v in reference]
    assert made[1].b == b"x"  # the default
    assert made[0].c is None  # a field outside __init__ gets its default
    with pytest.raises(dataclasses.FrozenInstanceError):
        made[0].a = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        cls()  # type: ignore[call-arg]


def test_classes_it_cannot_serve_keep_their_constructor() -> None:
    @dataclasses.dataclass(frozen=True)
    class WithPostInit:
        a: int

        def __post_init__(self) -> None:
            object.__setattr__(self, "a", self.a + 1)

    init = WithPostInit.__init__
    assert fast_init(WithPostInit).__init__ is init
    assert WithPostInit(1).a == 2

    @dataclasses.dataclass
    class Mutable:
        a: int

    with pytest.raises(TypeError, match="not a frozen dataclass"):
        fast_init(Mutable)
