# Certificates and kubeconfigs of the local cluster, made with openssl (sourced by up.sh).
# shellcheck shell=bash

cert() {  # cert NAME SUBJECT [SAN]   - a client/server certificate signed by the cluster CA
  local name=$1 subject=$2 san=${3:-}
  [[ -f $PKI/$name.crt ]] && return 0
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  local ext=$PKI/$name.ext
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [[ -n $san ]] && echo "subjectAltName=$san"
  } > "$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

kubeconfig() {  # kubeconfig FILE CERT-NAME
  local file=$1 name=$2
  [[ -f $file ]] && return 0
  "$KUBE" kubectl config set-cluster kubecircus --server "https://$NODE_IP:6443" \
    --certificate-authority "$PKI/ca.crt" --embed-certs --kubeconfig "$file" >/dev/null
  "$KUBE" kubectl config set-credentials "$name" --client-certificate "$PKI/$name.crt" \
    --client-key "$PKI/$name.key" --embed-certs --kubeconfig "$file" >/dev/null
  "$KUBE" kubectl config set-context kubecircus --cluster kubecircus --user "$name" --kubeconfig "$file" >/dev/null
  "$KUBE" kubectl config use-context kubecircus --kubeconfig "$file" >/dev/null
}

make_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  if [[ ! -f $PKI/ca.crt ]]; then
    openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=kubecircus-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$PKI/ca.crt" 2>/dev/null
  fi
  if [[ ! -f $PKI/sa.key ]]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
  cert apiserver "/CN=kube-apiserver" \
    "IP:$NODE_IP,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert admin "/O=system:masters/CN=kubernetes-admin"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kube-proxy "/CN=system:kube-proxy"
  cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "IP:$NODE_IP,DNS:$NODE_NAME"
  cert kube-router "/CN=kubecircus:kube-router"
  cert hostpath-provisioner "/CN=kubecircus:hostpath-provisioner"
  kubeconfig "$STATE/admin.conf" admin
  kubeconfig "$STATE/controller-manager.conf" controller-manager
  kubeconfig "$STATE/scheduler.conf" scheduler
  kubeconfig "$STATE/kube-proxy.conf" kube-proxy
  kubeconfig "$STATE/kubelet.conf" kubelet
  kubeconfig "$STATE/kube-router.conf" kube-router
  kubeconfig "$STATE/hostpath-provisioner.conf" hostpath-provisioner
}
