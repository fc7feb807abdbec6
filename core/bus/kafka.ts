export async function createKafkaBus(_o: unknown): Promise<never> { throw new Error('Kafka adapter is being written'); }
