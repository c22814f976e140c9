// graphql-ws over Node: subscribe to catalogChanged(after: AFTER), print the change of ENTITY_ID as JSON.
// Usage: node subscribe.mjs WS_URL TOKEN AFTER ENTITY_ID
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, token, after, entityId] = process.argv.slice(2);
setTimeout(() => {
  console.error("no matching change within 20 s");
  process.exit(2);
}, 20_000).unref();

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
});
const query = `subscription($after: String) {
  catalogChanged(after: $after) { kind position entity entityId } }`;
for await (const result of client.iterate({ query, variables: { after } })) {
  if (result.errors) {
    console.error(JSON.stringify(result.errors));
    process.exit(1);
  }
  const change = result.data.catalogChanged;
  if (change.entityId === entityId) {
    console.log(JSON.stringify(change));
    break;
  }
}
await client.dispose();
