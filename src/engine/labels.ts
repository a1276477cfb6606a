/** Label keys that identify containers: compose's own, and the ones this tool and its tests set. */
export const Labels = {
  project: 'com.docker.compose.project',
  service: 'com.docker.compose.service',
  number: 'com.docker.compose.container-number',
  oneoff: 'com.docker.compose.oneoff',
  configHash: 'com.docker.compose.config-hash',
  configFiles: 'com.docker.compose.project.config_files',
  workingDir: 'com.docker.compose.project.working_dir',
  /** Set on fixture images by fixtures/images/build.sh. */
  contentHash: 'org.arena-deploy.content-hash',
  /** On the throwaway containers that read bind-mounted files on the engine's host (value: the purpose); always removed. */
  helper: 'org.arena-deploy.helper',
} as const;
