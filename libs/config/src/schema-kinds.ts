// The small vocabulary the config schema is written in: one spec per field, with its default beside it.
// Hand-written rather than zod/valibot: none is installed, and problems need our own paths and fix hints.

/** A string field. `required` implies non-empty. */
export interface StringSpec {
  kind: 'string';
  /** Finishes the sentence "set <path> to …" in fix hints. */
  what: string;
  /** Absent, null or "" is a problem. */
  required?: boolean;
  /** null is a valid value (kept as null). */
  nullable?: boolean;
  /** Value used when the key is absent (or null on a non-nullable field). */
  default?: string | null;
  /** When absent, take the value of this sibling key. */
  defaultFrom?: string;
  /** The only values allowed. */
  enum?: readonly string[];
  /** `<key>_file` may name a file holding the value instead. */
  secretFile?: boolean;
}

/** An integer field within bounds. */
export interface IntSpec {
  kind: 'int';
  what: string;
  min: number;
  max: number;
  nullable?: boolean;
  default: number | null;
}

/** A boolean field. */
export interface BoolSpec {
  kind: 'bool';
  what: string;
  default: boolean;
}

/** A list of strings. */
export interface StringListSpec {
  kind: 'stringList';
  what: string;
  nullable?: boolean;
  default: readonly string[] | null;
}

/** A mapping whose keys are known; `default: 'fill'` = absent or null reads as `{}` (every field defaulted). */
export interface RuntimeObjectSpec {
  kind: 'object';
  what: string;
  fields: Readonly<Record<string, AnySpec>>;
  default: 'fill' | null;
}

/** A list of mappings. */
export interface RuntimeListSpec {
  kind: 'list';
  what: string;
  item: RuntimeObjectSpec;
  /** Fewer items (or absent) is a problem. */
  minItems: number;
}

/** Any field spec, as the reader walks them. */
export type AnySpec = StringSpec | IntSpec | BoolSpec | StringListSpec | RuntimeObjectSpec | RuntimeListSpec;

/** The spec kind a config value type calls for; lets the compiler check the schema against types.ts. */
export type SpecFor<V> = [V] extends [boolean]
  ? BoolSpec
  : [V] extends [number | null]
    ? IntSpec
    : [V] extends [string | null]
      ? StringSpec
      : [V] extends [string[] | null]
        ? StringListSpec
        : [V] extends [Array<infer I>]
          ? ListSpec<I>
          : ObjectSpec<NonNullable<V>>;

/** One spec per key of T, none missing, none extra. */
export type FieldsOf<T> = { [K in keyof T]-?: SpecFor<T[K]> };

/** A mapping spec typed against the interface it produces. */
export interface ObjectSpec<T> extends Omit<RuntimeObjectSpec, 'fields'> {
  fields: FieldsOf<T>;
}

/** A list spec typed against the item interface it produces. */
export interface ListSpec<I> extends Omit<RuntimeListSpec, 'item'> {
  item: ObjectSpec<I>;
}

/** T with every value possibly missing: what the reader produces before all problems are known. */
export type Loose<T> = T extends string | number | boolean | null
  ? T | undefined
  : T extends Array<infer I>
    ? Array<Loose<I>> | undefined
    : { [K in keyof T]: Loose<T[K]> } | undefined;
