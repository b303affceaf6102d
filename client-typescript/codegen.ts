// graphql-codegen: typed documents for the example operations (../client/*.graphql, the ones the
// demo dashboard sends) from ../schema.graphql, with the client preset. `npm run check` then runs
// `tsc --strict --noEmit` over the output and src/usage.ts, and relay-compiler over relay/.
//
// strictScalars: a custom scalar without a mapping here fails the run instead of becoming `any`.
// The preset emits the enums (as string unions) and inputs itself; do not add the `typescript`
// plugin to the same output (duplicate identifiers).
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../schema.graphql",
  documents: ["../client/*.graphql"],
  generates: {
    "src/gql/": {
      preset: "client",
      config: {
        strictScalars: true,
        scalars: {
          // ISO 8601 with offset, e.g. "2026-01-01T12:00:00+00:00"; parse with new Date(…).
          DateTime: "string",
          // Any JSON value (the CEL `context`): narrow it where you read it.
          JSON: "unknown",
        },
        enumsAsTypes: true,
        useTypeImports: true,
      },
    },
    // Every enum of the schema, including each mutation's `<Name>ErrorCode` (the codes its
    // OperationInfo can carry), which no field returns, so the client preset above leaves them
    // out: switch on `code as SetWorkflowInstanceStatusErrorCode` exhaustively (src/usage.ts).
    "src/schema-enums.ts": {
      plugins: ["typescript"],
      config: { onlyEnums: true, enumsAsTypes: true },
    },
    // Apollo's possibleTypes (apollo/cache.mjs): which types implement Node, make up each union.
    "src/possible-types.json": {
      plugins: ["fragment-matcher"],
    },
  },
};

export default config;
