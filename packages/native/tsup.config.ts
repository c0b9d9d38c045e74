import { packageBuild } from '../../tsup.shared';

// shims: the loader finds the addon relative to its own file, through import.meta.url in both builds.
export default packageBuild({ shims: true });
