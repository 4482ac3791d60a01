// Converts what a CEL expression returned into plain JSON values the rest of Portcullis can store and send.
import { type CelValue, isCelList, isCelMap, isCelType, isCelUint } from '@bufbuild/cel';
import { toJson } from '@bufbuild/protobuf';
import { isReflectMessage } from '@bufbuild/protobuf/reflect';
import { type Timestamp, TimestampSchema, timestampDate } from '@bufbuild/protobuf/wkt';

/** A value that survives JSON.stringify / JSON.parse unchanged. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * Converts a CEL value to JSON: int/uint → number when it is a safe integer, else its decimal
 * string (claims must not silently lose digits); NaN/±Infinity → "NaN"/"Infinity"/"-Infinity" as
 * protobuf JSON writes them; bytes → base64; timestamp → ISO 8601 string (milliseconds); duration
 * → protobuf JSON ("1.5s"); a type value → its name; map keys → strings.
 */
export function toPlainJson(value: CelValue): JsonValue {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return fromInteger(value);
  if (isCelUint(value)) return fromInteger(value.value);
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (isCelList(value)) return Array.from(value, toPlainJson);
  if (isCelMap(value)) {
    // fromEntries defines own properties, so a "__proto__" key cannot reach the prototype.
    return Object.fromEntries(
      Array.from(value, ([key, item]) => [isCelUint(key) ? String(key.value) : String(key), toPlainJson(item)]),
    );
  }
  if (isCelType(value)) return value.name;
  if (isReflectMessage(value)) {
    if (value.desc.typeName === TimestampSchema.typeName) return timestampDate(value.message as Timestamp).toISOString();
    return toJson(value.desc, value.message) as JsonValue;
  }
  throw new TypeError(`cannot convert CEL value of JS type ${typeof value} to JSON`);
}

function fromInteger(value: bigint): number | string {
  const asNumber = Number(value);
  return Number.isSafeInteger(asNumber) ? asNumber : value.toString();
}
