"""Build file for tau_course: reads everything from settings.ini (nbdev 2 style)."""
from configparser import ConfigParser
from pathlib import Path

import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

for key in 'version description keywords author author_email lib_name user min_python git_url'.split():
    assert key in cfg, f'settings.ini is missing "{key}"'

requirements = cfg.get('requirements', '').split()
dev_requirements = cfg.get('dev_requirements', '').split()
console_scripts = cfg.get('console_scripts', '').split()
py_versions = '3.10 3.11 3.12 3.13'.split()

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=Path('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license_expression='Apache-2.0',
    author=cfg['author'],
    author_email=cfg['author_email'],
    keywords=cfg['keywords'],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data=True,
    python_requires='>=' + cfg['min_python'],
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'data': cfg.get('data_requirements', '').split(),
                    'hub': cfg.get('hub_requirements', '').split()},
    entry_points={'console_scripts': console_scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    classifiers=['Programming Language :: Python :: ' + v for v in py_versions
                 if tuple(map(int, v.split('.'))) >= tuple(map(int, cfg['min_python'].split('.')))],
    zip_safe=False,
)
