"""Reading a YAML file the strict way every autodeploy file is read: libyaml where PyYAML has it, a key given twice
in one mapping an error (PyYAML would silently keep the last; in a policy or a key directory that is a decision
nobody made).

The document is built from libyaml's parse events as they come, not through PyYAML's node graph: that graph (a node
and two marks per scalar) took ~190 MB for a policy file of 20,000 services, and freed, it stayed in the process's
memory as fragmented heap. A mapping can also be walked key by key (`YamlReader.mapping_keys`), so that the policy
file's services are checked one at a time and the whole file never exists as parsed data (docs/performance.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import IO, Any, Final

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

__all__ = ["UnreadableYaml", "YamlReader", "open_yaml", "read_yaml"]

# libyaml's parser where PyYAML was built with it: a policy file of thousands of services loads much faster
# (docs/performance.md has the figures).
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR: Final = "tag:yaml.org,2002:str"
_MAP: Final = "tag:yaml.org,2002:map"
_SEQ: Final = "tag:yaml.org,2002:seq"
_MERGE: Final = "tag:yaml.org,2002:merge"
_VALUE: Final = "tag:yaml.org,2002:value"


class UnreadableYaml(ValueError):
    """The file cannot be read, or is not YAML; the message says which and why (callers add which file it is)."""


def read_yaml(path: Path, what: str) -> Any:
    """The single document of `path` (None when it has none); `what` names the file for a person."""
    with open_yaml(path, what) as reader:
        value = reader.value() if reader.document() else None
        reader.end()
        return value


@contextlib.contextmanager
def open_yaml(path: Path, what: str) -> Iterator[YamlReader]:
    """A reader of the file, which libyaml reads in chunks as it parses: neither the file's text nor its UTF-8
    copy is held whole. `what` names the file for a person ("the policy file")."""
    try:
        file = path.open(encoding="utf-8")
    except OSError as e:
        raise UnreadableYaml(f"cannot read {what}: {e}") from e
    with file, YamlReader(file, what) as reader:
        yield reader


class YamlReader:
    """One YAML document, built as libyaml parses it, with SafeLoader's types (its resolver and scalar
    constructors), anchors, aliases and merge keys (`<<`). YAML errors are raised as UnreadableYaml.

        with YamlReader(text) as reader:
            if reader.document():            # False for an empty file
                if reader.at_mapping():
                    for key in reader.mapping_keys():
                        value = reader.value()   # or, for a mapping, reader.mapping_keys() again
                reader.end()
    """

    def __init__(self, source: str | IO[str], what: str = "the file") -> None:
        self._what = what
        with self._errors():
            # Any: PyYAML's stubs leave the parser's event methods untyped.
            self._loader: Any = _SafeLoader(source)
        self._anchors: dict[str, Any] = {}
        self._started = False

    def __enter__(self) -> YamlReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._loader.dispose()

    def document(self) -> bool:
        """Start the document; False when the stream has none (an empty file, or only comments)."""
        with self._errors():
            self._expect(StreamStartEvent)
            self._started = True
            if self._loader.check_event(StreamEndEvent):
                return False
            self._expect(DocumentStartEvent)
            return True

    def end(self) -> None:
        """End the document, and check that no other one follows."""
        with self._errors():
            if not self._started:
                return
            if self._loader.check_event(DocumentEndEvent):
                self._loader.get_event()
            if not self._loader.check_event(StreamEndEvent):
                event = self._loader.peek_event()
                raise yaml.composer.ComposerError(
                    "expected a single document in the stream", None, "but found another document", event.start_mark
                )
            self._loader.get_event()

    def at_mapping(self) -> bool:
        """Whether the next value is a mapping that `mapping_keys` can walk (a plain one: no tag, no anchor)."""
        with self._errors():
            event = self._loader.peek_event()
            return isinstance(event, MappingStartEvent) and event.anchor is None and event.tag in (None, "!", _MAP)

    def mapping_keys(self) -> Iterator[Hashable]:
        """The keys of the mapping that starts here, one at a time: the caller reads each key's value (`value`,
        or `mapping_keys` for a mapping) before asking for the next. Merge keys are refused here (they would need the
        whole mapping); `value` takes them."""
        with self._errors():
            start = self._expect(MappingStartEvent)
            seen: set[Hashable] = set()
            while not self._loader.check_event(MappingEndEvent):
                key, tag, mark = self._key()
                if tag == _MERGE:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", start.start_mark, "a merge key (<<) is not allowed here", mark
                    )
                _unique(key, seen, start, mark)
                yield key
            self._loader.get_event()

    def value(self) -> Any:
        """The next value, whole."""
        with self._errors():
            return self._value()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """YAML's errors, and the file's (libyaml reads it as it parses), as UnreadableYaml."""
        try:
            yield
        except yaml.YAMLError as e:
            raise UnreadableYaml(f"is not valid YAML: {e}") from e
        except (OSError, UnicodeDecodeError) as e:
            raise UnreadableYaml(f"cannot read {self._what}: {e}") from e

    def _value(self) -> Any:
        event: Any = self._loader.get_event()
        mark: Any = event.start_mark  # Any: the stubs type libyaml's marks apart from PyYAML's
        if isinstance(event, AliasEvent):
            if event.anchor not in self._anchors:
                raise yaml.composer.ComposerError(None, None, f"found undefined alias {event.anchor!r}", mark)
            return self._anchors[event.anchor]
        if isinstance(event, ScalarEvent):
            value = self._scalar(event)
        elif isinstance(event, SequenceStartEvent):
            _collection_tag(event, _SEQ)
            value = []
            self._anchor(event, value)
            while not self._loader.check_event(SequenceEndEvent):
                value.append(self._value())
            self._loader.get_event()
            return value
        elif isinstance(event, MappingStartEvent):
            _collection_tag(event, _MAP)
            value = {}
            self._anchor(event, value)
            self._fill(event, value)
            return value
        else:  # the parser gives nothing else where a value is expected
            raise yaml.composer.ComposerError(None, None, f"expected a value, found {event}", mark)
        self._anchor(event, value)
        return value

    def _fill(self, start: MappingStartEvent, mapping: dict[Hashable, Any]) -> None:
        """A mapping's entries, as SafeConstructor builds them: the merged mappings' entries first (in order, a
        later one's value for a key replacing an earlier's), then the mapping's own, each of its keys once."""
        merged: list[dict[Hashable, Any]] = []
        own: list[tuple[Hashable, Any]] = []
        seen: set[Hashable] = set()
        while not self._loader.check_event(MappingEndEvent):
            key, tag, mark = self._key()
            if tag == _MERGE:
                merged.extend(_merged(self._value(), start, mark))
                continue
            _unique(key, seen, start, mark)
            own.append((key, self._value()))
        self._loader.get_event()
        for source in merged:
            mapping.update(source)
        mapping.update(own)

    def _key(self) -> tuple[Hashable, str | None, Any]:
        """The next key, the tag it resolves to when it is a scalar, and where it is."""
        event = self._loader.peek_event()
        mark = event.start_mark
        if isinstance(event, ScalarEvent):
            tag = self._tag(event)
            if tag == _MERGE:
                self._loader.get_event()
                return "<<", tag, mark
            if tag == _VALUE:  # `=` as a key: a string, as SafeConstructor has it
                self._loader.get_event()
                key = self._anchor(event, event.value)
                return key, _STR, mark
        key = self._value()
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", None, "found an unhashable key (a mapping or a list)", mark
            )
        return key, None, mark

    def _tag(self, event: Any) -> str:
        if event.tag is None or event.tag == "!":
            tag: str = self._loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            return tag
        return str(event.tag)

    def _scalar(self, event: Any) -> Any:
        tag = self._tag(event)
        if tag == _STR:
            return event.value
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        try:
            return self._loader.construct_object(node, deep=True)
        finally:
            self._loader.constructed_objects.clear()

    def _anchor(self, event: Any, value: Any) -> Any:
        if event.anchor is not None:
            self._anchors[event.anchor] = value
        return value

    def _expect(self, kind: type[Any]) -> Any:
        event = self._loader.get_event()
        if not isinstance(event, kind):
            raise yaml.composer.ComposerError(
                None, None, f"expected {kind.__name__}, found {type(event).__name__}", event.start_mark
            )
        return event


def _unique(key: Hashable, seen: set[Hashable], start: Any, mark: Any) -> None:
    if key in seen:
        raise yaml.constructor.ConstructorError(
            "while reading a mapping", start.start_mark, f"found the key {key!r} twice", mark
        )
    seen.add(key)


def _merged(value: Any, start: Any, mark: Any) -> list[dict[Hashable, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    raise yaml.constructor.ConstructorError(
        "while constructing a mapping", start.start_mark, "expected a mapping or list of mappings for merging", mark
    )


def _collection_tag(event: Any, default: str) -> None:
    if event.tag not in (None, "!", default):
        raise yaml.constructor.ConstructorError(
            None, None, f"the tag {event.tag!r} is not supported (plain mappings and lists only)", event.start_mark
        )
