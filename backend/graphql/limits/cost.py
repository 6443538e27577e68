"""How big an operation is, read from its document before it runs: depth, aliases,
directives, and cost (the most objects its answer can hold).

Cost follows GitHub's node limit: a connection's ``first`` (a literal or a variable, the
default page size when absent) multiplies the cost of everything under it. Each object
in the answer counts 1: a connection, its page info, every edge, every node, every other
object a field returns. Scalars are free. A list of objects that is not a connection is
unpaged because it is short by design (the reaction kinds of a summary, a track's
sessions, a band's sources): it counts ``UNPAGED_LIST`` items; ``nodes(ids:)`` counts as
many as it was given ids.

Fragments count as if written out where they are spread (as graphql-armor counts), but
each fragment is measured once: a document that spreads a fragment twice at every level
costs linear time to measure, not exponential. Nothing here trusts the document to be
valid (it is measured before validation, which costs more): unknown fields, fragments
or types count nothing, fragment cycles end the walk."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

from backend.graphql.relay import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

# ``nodes(ids:)`` takes at most this many ids (backend/graphql/schema.py's MAX_NODES).
MAX_IDS = 100
# What an unpaged list of objects counts as (see above). At 10, the band page of
# tests/test_statement_count.py (50 tracks, 3 versions each, 5 comments each) costs 4,330.
UNPAGED_LIST = 10
_INTROSPECTION = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}


@dataclass(frozen=True)
class Measure:
    depth: int = 0
    aliases: int = 0
    directives: int = 0
    cost: int = 0

    def __add__(self, other: Measure) -> Measure:
        """Side by side: the deeper one's depth, the sum of the rest."""
        return Measure(
            max(self.depth, other.depth),
            self.aliases + other.aliases,
            self.directives + other.directives,
            self.cost + other.cost,
        )


EMPTY = Measure()


def measure_operation(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
) -> Measure:
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    if root is None:
        return EMPTY
    walker = _Walker(schema, document, operation, variables or {})
    inner = walker.selection_set(operation.selection_set, root, None)
    return inner + Measure(directives=len(operation.directives or ()))


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.variables = dict(variables)
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            if name not in self.variables and definition.default_value is not None:
                self.variables[name] = _literal(definition.default_value, {})
        # (fragment, page size of the connection it is spread in) -> its measure
        self.measured: dict[tuple[str, int | None], Measure] = {}
        self.walking: set[str] = set()

    def selection_set(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType, page: int | None
    ) -> Measure:
        """``page``: the page size when ``parent`` is a connection (for its edges/nodes)."""
        total = EMPTY
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = (
                    self.schema.get_type(selection.type_condition.name.value)
                    if selection.type_condition
                    else parent
                )
                if condition is not None:
                    inner = self.selection_set(
                        selection.selection_set, condition, page if condition is parent else None
                    )
                    total += inner + Measure(directives=len(selection.directives or ()))
            elif isinstance(selection, FragmentSpreadNode):
                total += self.spread(selection, parent, page)
        return total

    def spread(
        self, spread: FragmentSpreadNode, parent: GraphQLNamedType, page: int | None
    ) -> Measure:
        own = Measure(directives=len(spread.directives or ()))
        name = spread.name.value
        fragment = self.fragments.get(name)
        if fragment is None or name in self.walking:  # unknown, or a cycle: validation says so
            return own
        condition = self.schema.get_type(fragment.type_condition.name.value)
        if condition is None:
            return own
        key = (name, page if condition is parent else None)
        if key not in self.measured:
            self.walking.add(name)
            try:
                inner = self.selection_set(fragment.selection_set, condition, key[1])
            finally:
                self.walking.discard(name)
            self.measured[key] = inner + Measure(directives=len(fragment.directives or ()))
        return own + self.measured[key]

    def field(self, node: FieldNode, parent: GraphQLNamedType, page: int | None) -> Measure:
        own = Measure(
            depth=1, aliases=1 if node.alias else 0, directives=len(node.directives or ())
        )
        name = node.name.value
        definition: GraphQLField | None = _INTROSPECTION.get(name)
        if definition is None and isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(name)
        if definition is None or node.selection_set is None:
            return own  # a scalar, __typename, or unknown (validation refuses it)
        named = get_named_type(definition.type)
        if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
            return own
        if name in _INTROSPECTION:
            # graphql-core's MaxIntrospectionDepthRule bounds these; the schema is public
            # in development and refused in production, so it counts as one object.
            inner = self.selection_set(node.selection_set, named, None)
            return own + Measure(aliases=inner.aliases, directives=inner.directives, cost=1)
        connection_page = self.page_size(node) if _is_connection(named, definition) else None
        inner = self.selection_set(node.selection_set, named, connection_page)
        items = self.items(node, definition.type, page)
        return Measure(
            depth=1 + inner.depth,
            aliases=own.aliases + inner.aliases,
            directives=own.directives + inner.directives,
            cost=items * (1 + inner.cost),
        )

    def items(self, node: FieldNode, type_: GraphQLOutputType, page: int | None) -> int:
        """How many objects the field returns per parent object."""
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if not isinstance(type_, GraphQLList):
            return 1
        if page is not None:  # a connection's edges or nodes
            return page
        if node.name.value == "nodes":
            ids = self.argument(node, "ids")
            if isinstance(ids, list):
                return min(len(ids), MAX_IDS)
        return UNPAGED_LIST

    def page_size(self, node: FieldNode) -> int:
        first = self.argument(node, "first")
        if not isinstance(first, int) or isinstance(first, bool):
            return DEFAULT_PAGE_SIZE  # absent, null or not a number (coercion refuses it)
        # Past the maximum the resolver refuses it (BAD_USER_INPUT) before reading a row.
        return max(0, min(first, MAX_PAGE_SIZE))

    def argument(self, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                return _literal(argument.value, self.variables)
        return None


def _is_connection(named: GraphQLNamedType, definition: GraphQLField) -> bool:
    return (
        isinstance(named, GraphQLObjectType)
        and "first" in definition.args
        and "edges" in named.fields
        and "pageInfo" in named.fields
    )


def _literal(value: ValueNode, variables: Mapping[str, Any]) -> Any:
    """The few literal shapes cost needs: ints, lists, variables; anything else None."""
    if isinstance(value, VariableNode):
        return variables.get(value.name.value)
    if isinstance(value, IntValueNode):
        try:
            return int(value.value)
        except ValueError:
            return None
    if isinstance(value, ListValueNode):
        return [_literal(item, variables) for item in value.values]
    return None
