import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { InvalidRequestError } from "@smollm/common";
import { RequestParamError } from "@smollm/chat";
import { ANY_JSON_SCHEMA, lowerJsonSchema } from "./json-schema-lowering.ts";
import { validateJsonSchema } from "./json-schema-validator.ts";

const P = "response_format.json_schema.schema";

test("lowering: standard schemas become node-llama-cpp's grammar subset", () => {
  assert.deepEqual(
    lowerJsonSchema(
      {
        $schema: "https://json-schema.org/draft/2020-12/schema",
        title: "Person",
        type: "object",
        properties: {
          name: { type: "string", description: "full name", maxLength: 40 },
          age: { anyOf: [{ type: "integer" }, { type: "null" }], default: null },
          tags: { type: "array", items: { enum: ["a", "b"] }, maxItems: 3 },
          born: { type: "string", format: "date" },
          pet: { $ref: "#/definitions/Pet" },
          any: {},
          pair: { type: "array", items: [{ type: "number" }, { const: true }] },
          nick: { type: ["string", "null"] },
        },
        required: ["name"],
        definitions: { Pet: { allOf: [{ type: "object", properties: { kind: { const: "cat" } }, additionalProperties: false }] } },
      },
      P,
    ),
    {
      type: "object",
      properties: {
        name: { type: "string", maxLength: 40 },
        age: { oneOf: [{ type: "integer" }, { type: "null" }] },
        tags: { type: "array", items: { enum: ["a", "b"] }, maxItems: 3 },
        born: { type: "string", format: "date" },
        pet: { $ref: "#/$defs/Pet" },
        any: ANY_JSON_SCHEMA,
        pair: { type: "array", prefixItems: [{ type: "number" }, { const: true }] },
        nick: { oneOf: [{ type: "string" }, { type: "null" }] },
      },
      // Listed properties are all written, so extra ones are not needed.
      additionalProperties: false,
      $defs: { Pet: { type: "object", properties: { kind: { const: "cat" } }, additionalProperties: false } },
    },
  );
  // No properties: JSON Schema's default allows any, made explicit for the grammar.
  assert.deepEqual(lowerJsonSchema({ type: "object" }, P), { type: "object", additionalProperties: true });
  assert.deepEqual(lowerJsonSchema({ properties: { x: { type: "boolean" } } }, P), {
    type: "object",
    properties: { x: { type: "boolean" } },
    additionalProperties: false,
  });
});

test("lowering: what a grammar cannot enforce is a 400 naming the keyword", () => {
  const cases: [unknown, string, RegExp][] = [
    [{ type: "string", pattern: "^a+$" }, `${P}.pattern`, /'pattern' is not supported/],
    [{ type: "object", properties: { age: { type: "integer", minimum: 0 } } }, `${P}.properties.age.minimum`, /'minimum' is not supported.*Supported keywords/],
    [{ type: "string", format: "email" }, `${P}.format`, /format 'email'/],
    [{ not: { type: "null" } }, `${P}.not`, /'not'/],
    [{ allOf: [{ type: "string" }, { maxLength: 3 }] }, `${P}.allOf`, /exactly one/],
    [{ $ref: "#" }, `${P}.$ref`, /only references to the root's '\$defs'/],
    [{ $ref: "#/$defs/Missing" }, `${P}.$ref`, /Missing/],
    [{ type: "object", properties: {}, required: ["x"] }, `${P}.required`, /'x' is not in 'properties'/],
    [{ type: "array", uniqueItems: true }, `${P}.uniqueItems`, /uniqueItems/],
    [{ type: "strin" }, `${P}.type`, /not a JSON Schema type/],
    [{ enum: [{ a: 1 }] }, `${P}.enum[0]`, /only strings, numbers/],
    [{ type: "object", anyOf: [{}] }, `${P}.type`, /cannot be combined with 'anyOf'/],
    [{ type: "object", properties: { a: { $defs: {} } } }, `${P}.properties.a.$defs`, /only supported at the root/],
    [false, P, /allows no value/],
    ["{}", P, /must be an object/],
    [{ nullable: true, type: "string" }, `${P}.nullable`, /'nullable' is not supported/],
  ];
  for (const [schema, param, message] of cases) {
    assert.throws(
      () => lowerJsonSchema(schema, P),
      (e: unknown) => {
        assert.ok(e instanceof RequestParamError, String(e));
        assert.equal(e.param, param, JSON.stringify(schema));
        assert.match(e.message, message);
        return true;
      },
    );
  }
});

test("lowering: arbitrary JSON never throws anything but InvalidRequestError", () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), (schema) => {
      try {
        lowerJsonSchema(schema, P);
      } catch (error: unknown) {
        assert.ok(error instanceof InvalidRequestError, String(error));
      }
    }),
    { numRuns: 3000 },
  );
});

test("validator: the usual keywords, with the path of the first problem", () => {
  const schema = {
    type: "object",
    properties: {
      city: { type: "string", minLength: 2, pattern: "^[A-Z]" },
      days: { type: "integer", minimum: 1, maximum: 14 },
      unit: { enum: ["c", "f"] },
      at: { type: "string", format: "date-time" },
      tags: { type: "array", items: { type: "string" }, uniqueItems: true, maxItems: 2 },
      where: { $ref: "#/$defs/point" },
    },
    required: ["city", "days"],
    additionalProperties: false,
    $defs: { point: { type: "object", properties: { lat: { type: "number" } }, required: ["lat"] } },
  };
  const ok = { city: "São Paulo", days: 3, unit: "c", at: "2026-08-16T10:00:00Z", tags: ["x"], where: { lat: -23.5 } };
  assert.equal(validateJsonSchema(schema, ok), undefined);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...ok, city: "sp" }, /^\/city: does not match pattern/],
    [{ ...ok, city: "S" }, /^\/city: shorter than 2/],
    [{ ...ok, days: 3.5 }, /^\/days: expected integer/],
    [{ ...ok, days: 15 }, /^\/days: above the maximum 14/],
    [{ ...ok, unit: "k" }, /^\/unit: must be one of/],
    [{ ...ok, at: "yesterday" }, /^\/at: not a valid date-time/],
    [{ ...ok, tags: ["x", "x"] }, /^\/tags: items 0 and 1 are equal/],
    [{ ...ok, where: {} }, /^\/where: missing required property 'lat'/],
    [{ ...ok, extra: 1 }, /^\/: property 'extra' is not allowed/],
    [{ city: "Rome" }, /missing required property 'days'/],
  ];
  for (const [value, message] of bad) assert.match(validateJsonSchema(schema, value) ?? "", message, JSON.stringify(value));
  assert.equal(validateJsonSchema(true, 1), undefined);
  assert.match(validateJsonSchema(false, 1) ?? "", /no value/);
  assert.match(validateJsonSchema({ oneOf: [{ type: "number" }, { type: "integer" }] }, 1) ?? "", /matches 2 schemas/);
  assert.equal(validateJsonSchema({ anyOf: [{ type: "number" }, { type: "integer" }] }, 1), undefined);
  assert.match(validateJsonSchema({ type: "string", maxLength: 2 }, "😀😀😀") ?? "", /longer than 2/);
  assert.equal(validateJsonSchema({ type: "string", maxLength: 3 }, "😀😀😀"), undefined);
  // A recursive schema terminates.
  const tree = { type: "object", properties: { kids: { type: "array", items: { $ref: "#" } } } };
  assert.equal(validateJsonSchema(tree, { kids: [{ kids: [] }, {}] }), undefined);
  assert.match(validateJsonSchema({ $ref: "#" }, 1) ?? "", /nests too deeply/);
});
