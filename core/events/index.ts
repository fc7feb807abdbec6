export * from './schema.ts';
export * from './normalize.ts';
export * from './privacy.ts';
