{{- define "kubecircus.labels" -}}
app.kubernetes.io/name: kubecircus
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubecircus.operatorSelector" -}}
app.kubernetes.io/name: kubecircus
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubecircus.operatorImage" -}}
{{ .Values.operator.image.repository }}:{{ .Values.operator.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "kubecircus.workerImage" -}}
{{ .Values.jobs.workerImage.repository }}:{{ .Values.jobs.workerImage.tag | default .Chart.AppVersion }}
{{- end -}}

{{- /* host:port of the object store: the configured one, or the bundled MinIO's Service. */ -}}
{{- define "kubecircus.storeEndpoint" -}}
{{- if .Values.objectStore.endpoint -}}
{{ .Values.objectStore.endpoint }}
{{- else if .Values.minio.enabled -}}
kubecircus-minio.{{ .Release.Namespace }}.svc:9000
{{- else -}}
{{ fail "objectStore.endpoint is required when minio.enabled is false" }}
{{- end -}}
{{- end -}}

{{- /* The object store's location, for the operator and the set-up Job. */ -}}
{{- define "kubecircus.storeEnv" -}}
- {name: KUBECIRCUS_STORE_ENDPOINT, value: {{ include "kubecircus.storeEndpoint" . | quote }}}
- {name: KUBECIRCUS_STORE_SECURE, value: {{ .Values.objectStore.secure | quote }}}
- {name: KUBECIRCUS_STORE_REGION, value: {{ .Values.objectStore.region | quote }}}
- {name: KUBECIRCUS_STORE_BUCKET, value: {{ .Values.objectStore.bucket | quote }}}
- {name: KUBECIRCUS_INPUT_BUCKETS, value: {{ join "," .Values.objectStore.inputBuckets | quote }}}
{{- if .Values.objectStore.caSecret }}
- {name: KUBECIRCUS_STORE_CA_FILE, value: /var/run/kubecircus/store-ca/ca.crt}
{{- end }}
{{- end -}}

{{- /* queue.namespaceMaxPriority as "ns=cap,ns=cap" (sorted, so the Deployment only changes when the map does). */ -}}
{{- define "kubecircus.namespaceCaps" -}}
{{- $caps := list -}}
{{- range $ns := keys .Values.queue.namespaceMaxPriority | sortAlpha -}}
{{- $caps = append $caps (printf "%s=%v" $ns (index $.Values.queue.namespaceMaxPriority $ns)) -}}
{{- end -}}
{{- join "," $caps -}}
{{- end -}}

{{- define "kubecircus.gpuNodeSelector" -}}
{{- $pairs := list -}}
{{- range $k := keys .Values.jobs.gpuNodeSelector | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%v" $k (index $.Values.jobs.gpuNodeSelector $k)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
