// The CLI's synchronous writers (reports, sweep records) use @wrn/blocks' one atomic write: staging file, fsync, rename.
export { writeFileAtomicSync as writeFileAtomic } from '@wrn/blocks/node';
