// Apollo Client with a split link: queries over HTTP, subscriptions over graphql-ws.
// Usage: node apollo.mjs HTTP_URL WS_URL TOKEN AFTER ENTITY_ID; prints {"author": ..., "change": ...}.
import { ApolloClient, HttpLink, InMemoryCache, gql, split } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [httpUrl, wsUrl, token, after, entityId] = process.argv.slice(2);
setTimeout(() => {
  console.error("no matching change within 20 s");
  process.exit(2);
}, 20_000).unref();

const wsClient = createClient({
  url: wsUrl,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
});
const link = split(
  ({ query }) => {
    const definition = getMainDefinition(query);
    return definition.kind === "OperationDefinition" && definition.operation === "subscription";
  },
  new GraphQLWsLink(wsClient),
  new HttpLink({ uri: httpUrl, headers: { Authorization: `Bearer ${token}` } }),
);
const client = new ApolloClient({ link, cache: new InMemoryCache() });

const { data } = await client.query({
  query: gql`query($id: ID!) { author(id: $id) { id name } }`,
  variables: { id: entityId },
});
const change = await new Promise((resolve, reject) => {
  const subscription = client
    .subscribe({
      query: gql`subscription($after: String) {
        catalogChanged(after: $after) { kind position entity entityId } }`,
      variables: { after },
    })
    .subscribe({
      next: ({ data: event, error }) => {
        if (error) reject(error);
        else if (event.catalogChanged.entityId === entityId) {
          subscription.unsubscribe();
          resolve(event.catalogChanged);
        }
      },
      error: reject,
    });
});
console.log(JSON.stringify({ author: data.author, change }));
await wsClient.dispose();
