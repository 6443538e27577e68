// GraphQL Code Generator: typed documents, and the trusted documents manifest, from
// operations/**/*.graphql and ../schema.graphql. Run through scripts/contract.mjs.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CodegenConfig } from '@graphql-codegen/cli';
import { addTypenameSelectionDocumentTransform } from '@graphql-codegen/client-preset';

const here = path.dirname(fileURLToPath(import.meta.url));

const config: CodegenConfig = {
  schema: path.join(here, '../schema.graphql'),
  documents: path.join(here, 'operations/**/*.graphql'),
  ignoreNoDocuments: false,
  emitLegacyCommonJSImports: false,
  generates: {
    [`${path.join(here, 'src/gql')}/`]: {
      preset: 'client',
      // Apollo Client's cache adds __typename to every selection it sends and needs it in
      // the answer to read fragments; sent by hash, the server runs the manifest's text,
      // so that text must select __typename already.
      documentTransforms: [addTypenameSelectionDocumentTransform],
      presetConfig: {
        // Plain result types: a fragment's fields are readable where it is spread.
        fragmentMasking: false,
        // persisted-documents.json: sha256 hex -> document text, as the server checks it.
        persistedDocuments: { hashAlgorithm: 'sha256' },
      },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        scalars: {
          Date: 'string',
          DateTime: 'string',
          Upload: 'File | Blob',
        },
      },
    },
  },
};

export default config;
