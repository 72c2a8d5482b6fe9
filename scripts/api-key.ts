/**
 * `npm run api-key -- [name] [rpm] [streams]`: makes a new API key and prints
 * it once, with the line to add to the gateway's API keys file (which holds
 * only its SHA-256). `KEY=... npm run api-key -- name` hashes an existing key.
 */
import { randomBytes } from "node:crypto";
import { hashApiKey } from "@smollm/gateway";

const [name = "", rpm = "", streams = ""] = process.argv.slice(2);
const key = process.env["KEY"] ?? `sk-smollm-${randomBytes(32).toString("base64url")}`;
const fields = [...(name ? [name] : []), "sha256", hashApiKey(key), ...(rpm || streams ? [rpm, streams] : [])];
if (!process.env["KEY"]) console.log(`key (give it to the client, it is not stored anywhere):\n  ${key}`);
console.log(`line for the API keys file (kubectl create secret generic ... --from-file=api-keys=FILE):\n  ${fields.join(":")}`);
