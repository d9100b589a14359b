"""``@dataclass(frozen=True)`` for the records on the start-up path of ``vmcore log``,
``vmcore scan`` and the dump reader, without importing :mod:`dataclasses`.

Importing dataclasses costs ~10 ms of CPU (it imports inspect, which imports ast, dis,
tokenize...): a quarter of a whole ``kdumptool vmcore log`` run (bench/bench_ratios.py,
issue 13's goal of 10x ``makedumpfile --dump-dmesg``). The modules on that path
(formats/diskdump.py, elf.py, printk.py, vmcoreinfo.py, sources/vmcore.py) import
``dataclass`` and ``field`` from here instead; type checkers see the real dataclasses.

What it makes is what ``@dataclass(frozen=True)`` makes for a class with annotated
fields and no base dataclass: ``__init__`` (positional or keyword, defaults,
``field(default_factory=...)``), the same ``__repr__``, ``__eq__`` (same class, fields
in order), ``__hash__`` over the fields, ``__match_args__``, and assignment refused with
:class:`FrozenInstanceError` (an ``AttributeError``, like dataclasses'), and
``dataclasses.replace``/``fields``/``asdict``/``is_dataclass`` work on them (their
``__dataclass_fields__`` is made on first access). tests/formats/test_frozen.py checks the
behaviour against real dataclasses and that the hot paths do not import them.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy sees real dataclasses (same fields, same __init__)
    from dataclasses import dataclass, field
else:

    class FrozenInstanceError(AttributeError):
        """Assignment to a field of a frozen record."""

    class _Factory:
        __slots__ = ("factory",)

        def __init__(self, factory: object) -> None:
            self.factory = factory

    class _Opts:
        """``field(...)`` with a default and/or ``compare=False``/``repr=False``."""

        __slots__ = ("default", "factory", "compare", "repr")

        def __init__(self, default: object, factory: object, compare: bool, repr: bool) -> None:
            self.default, self.factory, self.compare, self.repr = default, factory, compare, repr

    _HAS_FACTORY = object()

    def field(*, default: object = _HAS_FACTORY, default_factory: object = None, compare: bool = True,
              repr: bool = True) -> object:
        """``dataclasses.field`` with ``default``, ``default_factory``, ``compare`` and ``repr``
        (a field left out of compare is left out of the hash too, as dataclasses does)."""
        if default is not _HAS_FACTORY and default_factory is not None:
            raise ValueError("cannot specify both default and default_factory")
        if compare and repr and default is _HAS_FACTORY and default_factory is not None:
            return _Factory(default_factory)
        return _Opts(default, default_factory, compare, repr)

    def _frozen_setattr(self: object, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def _frozen_delattr(self: object, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _make(cls: type) -> type:
        for base in cls.__mro__[1:]:
            if "__kdt_fields__" in base.__dict__ or "__dataclass_fields__" in base.__dict__:
                raise TypeError(f"{cls.__name__}: inheriting fields is not supported")
        names = tuple(cls.__dict__.get("__annotations__", {}))
        defaults = {}
        skip: dict = {"compare": set(), "repr": set()}
        seen_default = False
        for name in names:
            if name.startswith("__"):
                raise TypeError(f"{cls.__name__}: field name {name!r} not supported")
            default = cls.__dict__.get(name, _HAS_FACTORY)
            if isinstance(default, _Opts):
                opts = default
                for what in ("compare", "repr"):
                    if not getattr(opts, what):
                        skip[what].add(name)
                if opts.factory is not None:
                    default = _Factory(opts.factory)
                elif opts.default is not _HAS_FACTORY:
                    default = opts.default
                    setattr(cls, name, default)  # as dataclasses: the default as class attribute
                else:
                    delattr(cls, name)
                    default = _HAS_FACTORY
            if default is _HAS_FACTORY:
                if seen_default:
                    raise TypeError(f"non-default argument {name!r} follows default argument")
                continue
            seen_default = True
            defaults[name] = default
            if isinstance(default, _Factory):
                delattr(cls, name)   # as dataclasses: no class attribute for a factory field
        cls.__setattr__ = _frozen_setattr  # type: ignore[assignment]
        cls.__delattr__ = _frozen_delattr  # type: ignore[assignment]
        cls.__match_args__ = names
        cls.__kdt_fields__ = names
        cls.__dataclass_fields__ = _DataclassFields(defaults, skip)  # type: ignore[attr-defined]
        # The methods are compiled on first use: a module's records cost ~0.15 ms each to
        # compile, and most of them are never made on a given command's path.
        for meth in _METHODS:
            setattr(cls, meth, _stub(cls, meth, names, defaults, skip))
        return cls

    class _DataclassFields:
        """The class's ``__dataclass_fields__``, made on first access: ``dataclasses.replace``,
        ``fields``, ``asdict``, ``astuple`` and ``is_dataclass`` then work on these records as
        on real dataclasses. Only code that imported dataclasses asks, so importing it here
        costs nothing more."""

        def __init__(self, defaults: dict, skip: dict) -> None:
            self.defaults = defaults
            self.skip = skip

        def __get__(self, obj: object, owner: type) -> dict:
            import dataclasses

            out = {}
            for name in owner.__kdt_fields__:  # type: ignore[attr-defined]
                d = self.defaults.get(name, _HAS_FACTORY)
                flags = {w: name not in self.skip[w] for w in ("compare", "repr")}
                if isinstance(d, _Factory):
                    f = dataclasses.field(default_factory=d.factory, **flags)  # type: ignore[call-overload]
                elif name in self.defaults:
                    f = dataclasses.field(default=d, **flags)
                else:
                    f = dataclasses.field(**flags)
                f.name = name
                f.type = owner.__dict__["__annotations__"][name]
                f._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
                out[name] = f
            type.__setattr__(owner, "__dataclass_fields__", out)
            return out

    _METHODS = ("__init__", "__repr__", "__eq__", "__hash__")

    def _stub(cls: type, meth: str, names: tuple, defaults: dict, skip: dict) -> object:
        def first_call(self: object, *args: object, **kwargs: object) -> object:
            if cls.__dict__[meth] is first_call:
                _compile(cls, names, defaults, skip)
            return getattr(cls, meth)(self, *args, **kwargs)

        first_call.__qualname__ = f"{cls.__qualname__}.{meth}"
        return first_call

    def _compile(cls: type, names: tuple, defaults: dict, skip: dict) -> None:
        ns: dict = {"_setattr": object.__setattr__, "_HAS_FACTORY": _HAS_FACTORY}
        params, body = [], []
        for name in names:
            if name not in defaults:
                params.append(name)
                body.append(f"_setattr(self, {name!r}, {name})")
            elif isinstance(defaults[name], _Factory):
                ns[f"_f_{name}"] = defaults[name].factory
                params.append(f"{name}=_HAS_FACTORY")
                body.append(f"_setattr(self, {name!r}, _f_{name}() if {name} is _HAS_FACTORY else {name})")
            else:
                ns[f"_d_{name}"] = defaults[name]
                params.append(f"{name}=_d_{name}")
                body.append(f"_setattr(self, {name!r}, {name})")
        compared = [n for n in names if n not in skip["compare"]]
        values = "".join(f"self.{n}, " for n in compared)
        other = "".join(f"other.{n}, " for n in compared)
        fields_repr = ", ".join(f"{n}={{self.{n}!r}}" for n in names if n not in skip["repr"])
        src = "\n".join([
            f"def __init__(self, {', '.join(params)}):",
            *(f"    {b}" for b in body or ["pass"]),
            "def __repr__(self):",
            f"    return f'{{self.__class__.__qualname__}}({fields_repr})'",
            "def __eq__(self, other):",
            "    if other.__class__ is self.__class__:",
            f"        return ({values}) == ({other})",
            "    return NotImplemented",
            "def __hash__(self):",
            f"    return hash(({values}))",
        ])
        exec(src, ns)  # noqa: S102 - generated from the class's own field names
        for meth in _METHODS:
            fn = ns[meth]
            fn.__qualname__ = f"{cls.__qualname__}.{meth}"
            setattr(cls, meth, fn)

    def dataclass(cls: object = None, *, frozen: bool = False) -> object:
        """``@dataclass(frozen=True)``; anything else is refused (use dataclasses)."""
        if not frozen:
            raise TypeError("kdumptool.formats.frozen makes frozen records only")
        if cls is not None:
            return _make(cls)  # type: ignore[arg-type]
        return _make
