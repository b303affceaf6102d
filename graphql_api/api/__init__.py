"""The schema's parts: object types, inputs, queries, mutations, enums, filters,
connections and global IDs."""
