"""The sluice plugin SDK for Python (componentize-py): write a class, never
touch the bindings.

    import sluice_plugin as sluice

    class Plugin:
        def __init__(self, config):      # the stage's `config` table, a dict;
            ...                          # raise to refuse it
        def process(self, event):        # one event (a dict), in order
            return event                 # keep it (changed or not)

    Transform = sluice.transform(Plugin, name="my-plugin", version="0.1.0")

`process` returns the event (a dict) to keep it, a list of dicts for zero or
more events, or `sluice.drop(rule)` / `sluice.error(reason)`. An exception
becomes an error outcome ("ValueError: ..."): the host quarantines that event
with the reason, and the plugin goes on with the next one.

A parser gets raw records (bytes) instead:

    class Plugin:
        def __init__(self, config): ...
        def parse(self, record):         # bytes -> an outcome, as above
            ...

    Parser = sluice.parser(Plugin, name="my-parser", version="0.1.0")

Events are dicts keyed by the sluice schema's flat column names (`time`,
`actor_user_name`, ...); other keys end up in the `unmapped` column.
`get_path`/`set_path` read and write nested values by dotted path.
"""

import json

# The bindings componentize-py generates. They are imported here, at build
# time: the component is a snapshot taken after this module loaded, and
# modules first imported later are not in it.
try:
    from componentize_py_types import Err
    from wit_world import exports
    from wit_world.imports import host, types
except ImportError:  # outside a component build (e.g. unit tests of plugin logic)
    Err = exports = host = types = None

__all__ = ["transform", "parser", "drop", "error", "many", "get_path", "set_path", "log"]


class _Drop:
    def __init__(self, rule):
        self.rule = str(rule)


class _Error:
    def __init__(self, reason):
        self.reason = str(reason)


def drop(rule):
    """No event, on purpose; `rule` names why (it is counted under that name)."""
    return _Drop(rule)


def error(reason):
    """Not processed: the host quarantines the input with this reason."""
    return _Error(reason)


def many(events):
    """Zero or more events."""
    return list(events)


_MISSING = object()


def get_path(event, path, default=None):
    """The value at a dotted path ("a.b.c"), or `default`."""
    value = event
    for name in path.split("."):
        if not isinstance(value, dict):
            return default
        value = value.get(name, _MISSING)
        if value is _MISSING:
            return default
    return value


def set_path(event, path, value):
    """Sets the value at a dotted path, making the objects on the way."""
    names = path.split(".")
    target = event
    for name in names[:-1]:
        if not isinstance(target.get(name), dict):
            target[name] = {}
        target = target[name]
    target[names[-1]] = value


def log(level, message):
    """A line in the host's log: level is "trace", "debug", "info", "warn" or "error"."""
    host.log(types.Level[level.upper()], str(message))


def _text(event):
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _wire(result):
    try:
        if isinstance(result, dict):
            return types.Outcome_Keep(_text(result))
        if isinstance(result, _Drop):
            return types.Outcome_Drop(result.rule)
        if isinstance(result, _Error):
            return types.Outcome_Error(result.reason)
        if isinstance(result, (list, tuple)) and all(isinstance(e, dict) for e in result):
            return types.Outcome_Many([_text(e) for e in result])
    except ValueError as e:
        return types.Outcome_Error(f"event cannot be written as JSON: {e}")
    return types.Outcome_Error(f"the plugin returned {type(result).__name__}, not an event or an outcome")


def _call(fn, arg):
    try:
        return _wire(fn(arg))
    except Exception as e:  # the plugin's fault is the input's error, not a crash
        return types.Outcome_Error(f"{type(e).__name__}: {e}")


def _start(cls, config):
    try:
        settings = json.loads(config) if config.strip() else {}
    except ValueError as e:
        raise Err(f"plugin config is not valid JSON: {e}")
    try:
        return cls(settings)
    except Exception as e:
        raise Err(str(e) or type(e).__name__)


class _Exports:
    """What both worlds export: `info`, `init`, and a batch call that gives
    each input to `each(plugin, input)`."""

    def __init__(self, cls, name, version, each):
        self.cls, self.name, self.version, self.each = cls, name, version, each
        self.plugin = None

    def info(self):
        return types.PluginInfo(self.name, self.version)

    def init(self, config):
        self.plugin = _start(self.cls, config)

    def batch(self, inputs):
        if self.plugin is None:
            return [types.Outcome_Error("plugin used before init") for _ in inputs]
        return [self.each(self.plugin, i) for i in inputs]


def _event(plugin, text):
    try:
        event = json.loads(text)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        return types.Outcome_Error("event is not a JSON object")
    return _call(plugin.process, event)


def transform(cls, name, version):
    """The export class for a transform plugin: assign it to `Transform`."""
    shared = _Exports(cls, name, version, _event)

    class Transform(exports.Transform):
        def info(self):
            return shared.info()

        def init(self, config):
            shared.init(config)

        def process(self, events):
            return shared.batch(events)

    return Transform


def parser(cls, name, version):
    """The export class for a parser plugin: assign it to `Parser`."""
    shared = _Exports(cls, name, version, lambda plugin, record: _call(plugin.parse, bytes(record)))

    class Parser(exports.Parser):
        def info(self):
            return shared.info()

        def init(self, config):
            shared.init(config)

        def parse(self, records):
            return shared.batch(records)

    return Parser
