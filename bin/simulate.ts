export async function simulateCommand(_args: string[]): Promise<void> {
  throw new Error('parley simulate is not available yet');
}
