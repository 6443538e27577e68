"""Persisted queries: Apollo's automatic persisted queries, GraphQL-over-HTTP persisted
documents (``documentId``) and the trusted documents of frontend-contract/."""
